#pragma once

// A VM of the estate as Proxmox's API takes it. Pure: no I/O.
//
// VMs are cloned from a template VM (`clone_from_vmid`) and then configured; the template itself
// is created from a cloud image (`template_image`, imported with `import-from`). Cloud-init gives
// each VM its user, SSH key and address; the guest agent tells when it is up.

#include <cstdint>
#include <string>

#include "model/estate.h"
#include "pveconf/lxc.h"

namespace phoenix::pveconf {

// What VMs take from phoenix_vm_configs.json "vm_defaults" and the platform when their entry
// does not say: cores, memory, disk size, storage pool, bridge; the directory cloud images are
// imported from (vm_defaults.image_dir, default /var/lib/vz/import); and the SSH public key for
// cloud-init (the text of users.ssh_public_key_file, read by the caller).
struct VmContext {
  std::int64_t cores = 2;
  std::int64_t memory_mb = 2048;
  std::int64_t disk_size_gb = 32;
  std::string storage_pool = "local-lvm";
  std::string bridge = "vmbr0";
  std::string image_dir = "/var/lib/vz/import";
  std::string ssh_public_key;
};

// The defaults from the estate (no key text: that is a file the caller reads).
VmContext vm_context(const model::Estate& estate);

// The path of users.ssh_public_key_file, or empty.
std::string ssh_public_key_file(const model::Estate& estate);

// The configuration keys Phoenix manages on a VM, in a stable order: name, cores, memory, agent,
// net0 (virtio on the bridge, firewall=1), ipconfig0, nameserver, ciuser, sshkeys (URL-encoded,
// as Proxmox wants them), onboot, startup, tags.
Params vm_config(const model::Guest& vm, const VmContext& ctx);

// POST /nodes/{node}/qemu for a template VM built from its cloud image: vm_config plus vmid,
// the SCSI controller, scsi0 imported from the image, the cloud-init drive, boot order and a
// serial console.
Params vm_create_params(const model::Guest& vm, const VmContext& ctx);

// The disk size the VM should have, in GiB.
std::int64_t vm_disk_gb(const model::Guest& vm, const VmContext& ctx);

// The disk Phoenix gives VMs.
inline constexpr const char* kVmDisk = "scsi0";

}  // namespace phoenix::pveconf
