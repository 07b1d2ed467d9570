# minimal — the default tier: Debian bookworm with what a coding agent
# reaches for first. Sourced by images/rootfs-debian.sh (BASE, PKGS, SIZE,
# and tier_setup STAGE run after the packages are in).
BASE=
SIZE=4G
PKGS="bash sudo ca-certificates curl wget git openssh-client openssh-server
python3 python3-pip python3-venv nodejs npm build-essential make jq unzip zip
xz-utils less procps iproute2 iputils-ping vim-tiny nano file
libnss-myhostname"

tier_setup() {
	stage=$1
	chroot "$stage" /usr/sbin/groupadd -g 1000 lohar
	chroot "$stage" /usr/sbin/useradd -m -u 1000 -g 1000 -s /bin/bash -G sudo lohar
	echo 'lohar ALL=(ALL) NOPASSWD:ALL' > "$stage/etc/sudoers.d/lohar"
	chmod 0440 "$stage/etc/sudoers.d/lohar"
	mkdir -p "$stage/workspace"
	chown 1000:1000 "$stage/workspace"
	# every sandbox would share these: a user who wants sshd runs ssh-keygen -A
	rm -f "$stage"/etc/ssh/ssh_host_*
	# pip installs into a venv (python3 -m venv) or with --user; Debian
	# refuses system-wide installs (PEP 668), as on any bookworm host
}
