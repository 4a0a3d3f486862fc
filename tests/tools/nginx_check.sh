#!/usr/bin/env bash
# Runs the real `nginx -t` on a rendered gateway site. The site is included in a minimal main
# configuration inside a private prefix; the certificate paths it names are pointed at a
# throwaway self-signed pair, since nginx -t loads them.
set -euo pipefail
site=$1
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "nginx is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=phoenix-test" \
  -keyout "$work/test.key" -out "$work/test.crt" 2>/dev/null
# Point ssl_certificate / ssl_certificate_key at the test pair; everything else is as rendered.
sed -E "s#^(\s*ssl_certificate)\s+\S+;#\1 $work/test.crt;#; s#^(\s*ssl_certificate_key)\s+\S+;#\1 $work/test.key;#" \
  "$site" > "$work/site.conf"
grep -q "$work/test.crt" "$work/site.conf" || { echo "no ssl_certificate line in $site" >&2; exit 1; }
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
pid $work/nginx.pid;
error_log $work/logs/error.log;
events {}
http {
  access_log off;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  include $work/site.conf;
}
CONF
"$nginx_bin" -t -p "$work" -c "$work/nginx.conf" -e "$work/logs/error.log"
