/* init.c — lohar's duties as PID 1 inside a VM: mount the kernel
 * filesystems, load the kernel modules the initramfs carries, mount the
 * root disk and switch to it, bring up loopback, find the agent channel,
 * and later apply hostname and network settings from CONFIGURE.
 * Sits between the kernel and main.c; nothing here runs in test mode.
 *
 * Boot, as the engine sets it up (kernel command line in parentheses):
 *
 *   initramfs: /init = lohar, modules listed in /etc/lohar/modules
 *     mount /proc /sys /dev /dev/pts /dev/shm
 *     load modules in order (virtio_mmio, virtio_blk, ext4, ...)
 *     wait for the root disk  (lohar.root=/dev/vda lohar.rootfstype=ext4)
 *     mount it on /newroot, move /dev /proc /sys into it, empty the
 *     initramfs, make /newroot the root
 *   root filesystem:
 *     mount /tmp /run (tmpfs), create the workspace, lo up
 *     find the virtio-serial port named bhatti.agent → /dev/vportNpM
 *
 * Without lohar.root the same binary can run as init of a root filesystem
 * directly (init=/sbin/lohar); then only the mounts are done.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netpacket/packet.h>
#include <net/ethernet.h>
#include <netinet/if_ether.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "num.h"

#define MODULES_LIST "/etc/lohar/modules"
#define ROOT_WAIT_MS 10000

/* Value of key=... on the kernel command line, or NULL. Caller frees. */
static char *cmdline_get(const char *key)
{
	char line[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	line[n] = '\0';
	size_t klen = strlen(key);
	for (char *p = line; *p;) {
		while (*p == ' ' || *p == '\n')
			p++;
		char *end = p + strcspn(p, " \n");
		if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=')
			return xstrndup(p + klen + 1, (size_t)(end - p) - klen - 1);
		p = end;
	}
	return NULL;
}

static int mount_one(const char *src, const char *dst, const char *type,
		     unsigned long flags, const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY) {
		log_warn("mount %s on %s: %s", type, dst, strerror(errno));
		return -errno;
	}
	return 0;
}

static void mount_kernel_fs(void)
{
	mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "gid=5,mode=0620,ptmxmode=0666");
	mount_one("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	/* /dev/ptmx must reach the devpts instance above */
	struct stat st;
	if (lstat("/dev/ptmx", &st) < 0 || !S_ISLNK(st.st_mode)) {
		unlink("/dev/ptmx");
		if (symlink("pts/ptmx", "/dev/ptmx") < 0)
			log_warn("symlink /dev/ptmx: %s", strerror(errno));
	}
}

static void load_modules(void)
{
	FILE *f = fopen(MODULES_LIST, "re");
	char line[512];
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		int fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			log_warn("module %s: %s", line, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			log_warn("load %s: %s", line, strerror(errno));
		close(fd);
	}
	fclose(f);
}

static int wait_for_path(const char *path, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 5) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(5000);
	}
	return access(path, F_OK) == 0 ? 0 : -ENOENT;
}

/* Delete the initramfs contents (it lives in RAM), staying on its device. */
static void remove_tree(int dirfd, dev_t dev)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;
	if (!d) {
		close(dirfd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub >= 0)
				remove_tree(sub, dev);
			unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(dirfd, de->d_name, 0);
		}
	}
	closedir(d);
}

static int switch_root(const char *dev, const char *fstype, struct err *e)
{
	struct stat root_st;

	if (wait_for_path(dev, ROOT_WAIT_MS) < 0)
		return err_set(e, ENOENT, "root device '%s' did not appear", dev);
	mkdir("/newroot", 0755);
	if (mount(dev, "/newroot", fstype, MS_NOATIME, NULL) < 0)
		return err_set(e, errno, "cannot mount '%s' (%s): %s", dev, fstype, strerror(errno));
	const char *moves[] = { "/dev", "/proc", "/sys" };
	for (size_t i = 0; i < ARRAY_SIZE(moves); i++) {
		char dst[64];
		snprintf(dst, sizeof(dst), "/newroot%s", moves[i]);
		mkdir(dst, 0755);
		if (mount(moves[i], dst, NULL, MS_MOVE, NULL) < 0)
			return err_set(e, errno, "cannot move %s: %s", moves[i], strerror(errno));
	}
	if (stat("/", &root_st) == 0) {
		int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0)
			remove_tree(fd, root_st.st_dev);
	}
	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 ||
	    chroot(".") < 0 || chdir("/") < 0)
		return err_set(e, errno, "cannot switch to the root filesystem: %s", strerror(errno));
	return 0;
}

static void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	if (fd < 0)
		return;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			log_warn("lo up: %s", strerror(errno));
	}
	close(fd);
}

/* `lohar hold` for the guest's programs: this binary copied to
 * /run/lohar/lohar (after the switch to the root disk the initramfs's
 * /init is out of reach), on the default PATH, and linked from
 * /usr/local/bin when the image has that directory and no lohar there. */
static void install_self(void)
{
	mkdir(LOHAR_RUN_DIR, 0755);
	int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int out = open(LOHAR_RUN_DIR "/lohar", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	char b[65536];
	ssize_t n = 0;
	while (in >= 0 && out >= 0 && (n = read(in, b, sizeof(b))) > 0)
		if (write_all(out, b, (size_t)n) < 0) {
			n = -1;
			break;
		}
	if (in < 0 || out < 0 || n < 0)
		log_warn("cannot install %s/lohar: %s", LOHAR_RUN_DIR, strerror(errno));
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	struct stat st;
	if (stat("/usr/local/bin", &st) == 0 && lstat("/usr/local/bin/lohar", &st) < 0 &&
	    symlink(LOHAR_RUN_DIR "/lohar", "/usr/local/bin/lohar") < 0)
		log_debug("symlink /usr/local/bin/lohar: %s", strerror(errno));
}

int init_pid1(struct err *e)
{
	mount_kernel_fs();
	char *root = cmdline_get("lohar.root");
	if (root) {
		char *fstype = cmdline_get("lohar.rootfstype");
		load_modules();
		int r = switch_root(root, fstype ? fstype : "ext4", e);
		free(fstype);
		free(root);
		if (r < 0)
			return r;
	}
	mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	install_self();
	mkdir("/dev/pts", 0755); /* no-ops when /dev moved with its submounts */
	if (mkdir(agent.workspace, 0755) == 0 && agent.switch_user &&
	    chown(agent.workspace, agent.uid, agent.gid) < 0)
		log_warn("chown %s: %s", agent.workspace, strerror(errno));
	loopback_up();
	char host[65] = "";
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0] || strcmp(host, "(none)") == 0)
		init_set_hostname("bhatti", NULL);
	return 0;
}

int init_find_vport(const char *sysroot, const char *name, char *ret_path,
		    size_t size, struct err *e)
{
	char dir[512], file[1024], got[256];
	snprintf(dir, sizeof(dir), "%s/class/virtio-ports", sysroot);
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return err_set(e, ENOENT, "no virtio-serial ports (%s: %s)", dir, strerror(errno));
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vport", 5) != 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s/name", dir, de->d_name);
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, got, sizeof(got) - 1);
		close(fd);
		if (n <= 0)
			continue;
		got[n] = '\0';
		got[strcspn(got, "\n")] = '\0';
		if (strcmp(got, name) == 0) {
			snprintf(ret_path, size, "/dev/%s", de->d_name);
			closedir(d);
			return 0;
		}
	}
	closedir(d);
	return err_set(e, ENOENT, "no virtio-serial port named '%s'", name);
}

/* Keep /etc/<file> true for the hostname, unless the image manages it:
 * a symlink is left alone. Our images link /etc/hostname to
 * /proc/sys/kernel/hostname (always the kernel's name) and /etc/hosts to
 * a static /etc/lohar/hosts (the name resolves through NSS myhostname in
 * `minimal`), so a clone's identity step writes no file: under TCG the
 * first file write after a restore costs ~75 ms of translation, on ext4
 * or tmpfs alike (docs/benchmarks.md). Other images get the files
 * rewritten in place. */
static void write_etc(const char *path, const struct buf *text)
{
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
		return;
	op_file_write_atomic(path, text->data, text->len, 0644, 0, 0, false, NULL);
}

int init_set_hostname(const char *name, struct err *e)
{
	if (sethostname(name, strlen(name)) < 0)
		return err_set(e, errno, "cannot set hostname '%s': %s", name, strerror(errno));
	/* keep /etc/hostname and the 127.0.1.1 line true when the root is writable */
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s\n", name);
	write_etc("/etc/hostname", &b);
	buf_reset(&b);
	buf_addf(&b, "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
		 name);
	write_etc("/etc/hosts", &b);
	buf_release(&b);
	return 0;
}

static int parse_cidr(const char *cidr, struct in_addr *addr, struct in_addr *mask)
{
	char ip[64];
	const char *slash = strchr(cidr, '/');
	size_t n = slash ? (size_t)(slash - cidr) : strlen(cidr);
	unsigned prefix = 24;
	if (n >= sizeof(ip))
		return -EINVAL;
	memcpy(ip, cidr, n);
	ip[n] = '\0';
	if (slash && num_parse_u32(slash + 1, 0, 32, &prefix, "prefix", NULL) < 0)
		return -EINVAL;
	if (inet_pton(AF_INET, ip, addr) != 1)
		return -EINVAL;
	mask->s_addr = prefix ? htonl(~0u << (32 - prefix)) : 0;
	return 0;
}

static int ifreq_addr(int fd, unsigned long req, const char *ifname, struct in_addr a)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	sin->sin_family = AF_INET;
	sin->sin_addr = a;
	return ioctl(fd, req, &ifr) < 0 ? -errno : 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;
	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

/* A gratuitous ARP (a request for our own address, to everyone): the
 * bridge and the neighbours learn where a clone's new MAC and address
 * are at once. Best effort. */
static void announce(const char *ifname, const uint8_t mac[6], struct in_addr addr)
{
	struct {
		uint16_t htype, ptype;
		uint8_t hlen, plen;
		uint16_t op;
		uint8_t sha[6], spa[4], tha[6], tpa[4];
	} __attribute__((packed)) arp = {
		.htype = htons(1), .ptype = htons(ETH_P_IP), .hlen = 6, .plen = 4,
		.op = htons(1),
	};
	memcpy(arp.sha, mac, 6);
	memcpy(arp.spa, &addr, 4);
	memcpy(arp.tpa, &addr, 4);
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP),
				  .sll_ifindex = (int)if_nametoindex(ifname), .sll_halen = 6 };
	memset(ll.sll_addr, 0xff, 6);
	int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (fd < 0 || sendto(fd, &arp, sizeof(arp), 0, (struct sockaddr *)&ll, sizeof(ll)) < 0)
		log_warn("gratuitous arp on %s: %s", ifname, strerror(errno));
	if (fd >= 0)
		close(fd);
}

int init_configure_net(const struct proto_configure *cfg, struct err *e)
{
	struct in_addr addr, mask, gw;
	const char *ifname = cfg->net_ifname[0] ? cfg->net_ifname : "eth0";
	int r = 0;

	if (parse_cidr(cfg->net_address, &addr, &mask) < 0)
		return err_set(e, EINVAL, "invalid address '%s' (want a.b.c.d/prefix)", cfg->net_address);
	if (cfg->net_gateway[0] && inet_pton(AF_INET, cfg->net_gateway, &gw) != 1)
		return err_set(e, EINVAL, "invalid gateway '%s'", cfg->net_gateway);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, errno, "socket: %s", strerror(errno));
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	uint8_t mac[6] = { 0 };
	bool have_mac = cfg->net_mac && cfg->net_mac[0];
	if (have_mac && parse_mac(cfg->net_mac, mac) < 0) {
		r = err_set(e, EINVAL, "invalid mac '%s'", cfg->net_mac);
		goto out;
	}
	if (have_mac) {
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
		if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0) {
			r = err_set(e, errno, "cannot set the mac of '%s': %s", ifname, strerror(errno));
			goto out;
		}
	}
	if ((r = ifreq_addr(fd, SIOCSIFADDR, ifname, addr)) < 0 ||
	    (r = ifreq_addr(fd, SIOCSIFNETMASK, ifname, mask)) < 0) {
		err_set(e, -r, "cannot set the address of '%s': %s", ifname, strerror(-r));
		goto out;
	}
	if (cfg->net_mtu) {
		ifr.ifr_mtu = (int)cfg->net_mtu;
		if (ioctl(fd, SIOCSIFMTU, &ifr) < 0)
			log_warn("mtu %u on %s: %s", cfg->net_mtu, ifname, strerror(errno));
	}
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP | IFF_RUNNING, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)) {
		r = err_set(e, errno, "cannot bring up '%s': %s", ifname, strerror(errno));
		goto out;
	}
	if (cfg->net_gateway[0]) {
		struct rtentry rt = { 0 };
		struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
		struct sockaddr_in *gwa = (struct sockaddr_in *)&rt.rt_gateway;
		struct sockaddr_in *msk = (struct sockaddr_in *)&rt.rt_genmask;
		dst->sin_family = gwa->sin_family = msk->sin_family = AF_INET;
		gwa->sin_addr = gw;
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = (char *)ifname;
		if (ioctl(fd, SIOCADDRT, &rt) < 0 && errno != EEXIST) {
			r = err_set(e, errno, "cannot add the default route: %s", strerror(errno));
			goto out;
		}
	}
	if (cfg->net_dns && cfg->net_dns[0]) {
		struct buf b = BUF_INIT;
		for (size_t i = 0; cfg->net_dns[i]; i++)
			buf_addf(&b, "nameserver %s\n", cfg->net_dns[i]);
		buf_addf(&b, "search internal\noptions timeout:2 attempts:2\n");
		r = op_file_write_atomic("/etc/resolv.conf", b.data, b.len, 0644, 0, 0, false, e);
		buf_release(&b);
	}
	if (r == 0 && have_mac)
		announce(ifname, mac, addr);
out:
	close(fd);
	return r;
}
