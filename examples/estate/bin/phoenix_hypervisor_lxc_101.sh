#!/bin/sh
# Application script of the Nginx gateway (LXC 101): Phoenix delivers the rendered gateway site
# itself; this script only makes sure nginx is enabled and its site directory exists.
set -eu
mkdir -p /etc/nginx/sites-enabled
systemctl enable nginx
