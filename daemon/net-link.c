/* net-link.c — bridges, TAPs, addresses and IPv4 forwarding by ioctl (see
 * net-link.h). Sits between net.c and the engine's spawn (qemu-proc.c) and
 * the kernel; touches the links it is named and ip_forward.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net-link.h"

static int ctl_sock(struct err *e)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, errno, "socket: %s", strerror(errno));
	return fd;
}

static void ifr_init(struct ifreq *ifr, const char *name)
{
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
}

static int set_addr(int fd, unsigned long req, const char *name, uint32_t a)
{
	struct ifreq ifr;
	ifr_init(&ifr, name);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(a);
	return ioctl(fd, req, &ifr) < 0 ? -errno : 0;
}

static int set_up(int fd, const char *name, bool up)
{
	struct ifreq ifr;
	ifr_init(&ifr, name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	if (up)
		ifr.ifr_flags |= IFF_UP;
	else
		ifr.ifr_flags &= ~IFF_UP;
	return ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

bool link_exists(const char *name)
{
	return if_nametoindex(name) != 0;
}

int link_bridge_up(const char *name, uint32_t gw, unsigned prefix, struct err *e)
{
	int fd = ctl_sock(e), r = 0;
	if (fd < 0)
		return fd;
	struct ifreq ifr;
	ifr_init(&ifr, name);
	/* a MAC of its own: else it takes its ports' lowest and changes as
	 * TAPs come and go, and guests keep sending to the old one */
	ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
	memcpy(ifr.ifr_hwaddr.sa_data, (const uint8_t[]){ 0x02, 0x62, 0x68, (uint8_t)(gw >> 16),
							    (uint8_t)(gw >> 8), (uint8_t)gw }, 6);
	if (ioctl(fd, SIOCBRADDBR, name) < 0 && errno != EEXIST)
		r = err_set(e, errno, "cannot make the bridge '%s': %s", name, strerror(errno));
	else if (ioctl(fd, SIOCSIFHWADDR, &ifr) < 0)
		r = err_set(e, errno, "cannot set the MAC of '%s': %s", name, strerror(errno));
	else if ((r = set_addr(fd, SIOCSIFADDR, name, gw)) < 0 ||
		 (r = set_addr(fd, SIOCSIFNETMASK, name, prefix ? ~0u << (32 - prefix) : 0)) < 0)
		err_set(e, -r, "cannot set the address of '%s': %s", name, strerror(-r));
	else if ((r = set_up(fd, name, true)) < 0)
		err_set(e, -r, "cannot bring up '%s': %s", name, strerror(-r));
	close(fd);
	return r;
}

int link_bridge_delete(const char *name, struct err *e)
{
	if (!link_exists(name))
		return 0;
	int fd = ctl_sock(e), r = 0;
	if (fd < 0)
		return fd;
	set_up(fd, name, false);
	if (ioctl(fd, SIOCBRDELBR, name) < 0 && errno != ENXIO)
		r = err_set(e, errno, "cannot remove the bridge '%s': %s", name, strerror(errno));
	close(fd);
	return r;
}

int link_tap_open(const char *name, struct err *e)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno, "cannot open '/dev/net/tun': %s", strerror(errno));
	struct ifreq ifr;
	ifr_init(&ifr, name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = err_set(e, errno, "cannot make the TAP '%s': %s", name, strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}

int link_tap_join(const char *tap, const char *new_name, const char *bridge, struct err *e)
{
	int fd = ctl_sock(e), r = 0;
	if (fd < 0)
		return fd;
	struct ifreq ifr;
	if (new_name && strcmp(new_name, tap) != 0) {
		ifr_init(&ifr, tap);
		snprintf(ifr.ifr_newname, sizeof(ifr.ifr_newname), "%s", new_name);
		if (ioctl(fd, SIOCSIFNAME, &ifr) < 0) {
			r = err_set(e, errno, "cannot rename '%s' to '%s': %s", tap, new_name,
				    strerror(errno));
			goto out;
		}
		tap = new_name;
	}
	ifr_init(&ifr, bridge);
	ifr.ifr_ifindex = (int)if_nametoindex(tap);
	if (!ifr.ifr_ifindex || ioctl(fd, SIOCBRADDIF, &ifr) < 0) {
		r = err_set(e, errno, "cannot put '%s' on the bridge '%s': %s", tap, bridge,
			    strerror(errno));
		goto out;
	}
	if ((r = set_up(fd, tap, true)) < 0)
		err_set(e, -r, "cannot bring up '%s': %s", tap, strerror(-r));
out:
	close(fd);
	return r;
}

int link_forwarding_on(struct err *e)
{
	char now[2] = "";
	int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && read(fd, now, 1) == 1 && now[0] == '1') {
		close(fd);
		return 0;   /* (under systemd the tunables are read-only: install.sh set it) */
	}
	if (fd >= 0)
		close(fd);
	fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1\n", 2) != 2) {
		int r = err_set(e, errno, "cannot turn on ip_forward: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return r;
	}
	close(fd);
	return 0;
}
