# The acceptance test's template: Packer's null builder connects over SSH to a throwaway
# sshd that chroots into a bootstrapped Debian root; the provisioner runs twice, and the
# second run must change nothing.
variable "ssh_port" { type = number }
variable "ssh_key" { type = string }
variable "agent_binary" { type = string }

source "null" "target" {
  ssh_host             = "127.0.0.1"
  ssh_port             = var.ssh_port
  ssh_username         = "root"
  ssh_private_key_file = var.ssh_key
  # The chroot has no scp; sshd's internal-sftp needs nothing in it.
  ssh_file_transfer_method = "sftp"
}

build {
  sources = ["source.null.target"]

  provisioner "ecs-appliance" {
    agent_binary = var.agent_binary
  }

  provisioner "ecs-appliance" {
    agent_binary = var.agent_binary
  }
}
