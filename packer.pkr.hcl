# The ECS appliance image. `make image` sets everything up and runs
#   packer build -var agent_binary=bin/appliance-agent packer.pkr.hcl
# The ecs-image builder bootstraps the base on this machine (no hypervisor, no cloud
# account); the ecs-appliance provisioner installs the appliance through its chroot.

packer {
  required_version = ">= 1.12.0"
}

variable "base" {
  type        = string
  default     = "debian-trixie"
  description = "Base distribution from images/bases.yml: debian-trixie, debian-bookworm, ubuntu-noble, ubuntu-xenial."
}

variable "mirror" {
  type        = string
  default     = ""
  description = "Package archive URL. Empty: the archive this machine's apt sources use for the base's distribution."
}

variable "disk_size" {
  type        = string
  default     = "4G"
  description = "Size of the disk image; the root filesystem grows to a bigger disk at first boot."
}

variable "formats" {
  type        = list(string)
  default     = ["qcow2", "raw"]
  description = "Image formats to write: raw, qcow2, vmdk, vhdx."
}

variable "output_directory" {
  type        = string
  default     = "output"
  description = "Where the images, SHA256SUMS and manifest.json go; must not exist (or use -force)."
}

variable "agent_binary" {
  type        = string
  default     = "bin/appliance-agent"
  description = "The static appliance-agent binary to install (make appliance-agent-static)."
}

variable "image_archives" {
  type        = list(string)
  default     = []
  description = "Container image archives (docker save, or go-containerregistry tarballs) to bake in; the agent loads them into docker before its first build (of ECS or pdf-as), so the stack needs no registry (air-gapped sites)."
}

source "ecs-image" "appliance" {
  base             = var.base
  mirror           = var.mirror
  disk_size        = var.disk_size
  formats          = var.formats
  output_directory = var.output_directory
}

build {
  sources = ["source.ecs-image.appliance"]

  provisioner "ecs-appliance" {
    agent_binary   = var.agent_binary
    image_archives = var.image_archives
  }
}

# The same provisioner on another builder, e.g. QEMU booting a Debian cloud image with a
# cidata seed for the build user (needs packer plugins install github.com/hashicorp/qemu):
#
# source "qemu" "appliance" {
#   iso_url          = "<URL of a Debian trixie genericcloud qcow2>"
#   iso_checksum     = "file:<URL of its SHA512SUMS>"
#   disk_image       = true
#   disk_size        = "8G"
#   format           = "qcow2"
#   cd_label         = "cidata"
#   cd_content       = { "meta-data" = "", "user-data" = file("build-user-data.yml") }
#   ssh_username     = "debian"
#   ssh_private_key_file = "build_ed25519"
#   shutdown_command = "sudo poweroff"
#   output_directory = "output-qemu"
# }
#
# build {
#   sources = ["source.qemu.appliance"]
#   provisioner "ecs-appliance" {
#     agent_binary    = var.agent_binary
#     # The cloud image logs in as a user with sudo, not as root.
#     execute_command = "sudo sh '{{.Path}}'"
#   }
# }
