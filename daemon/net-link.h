/* net-link — the kernel objects of guest networking: bridges, TAPs, their
 * addresses, and IPv4 forwarding, made with ioctls (no `ip` process on a
 * create's path).
 *
 * Sits between the daemon's network (net.c) and the engine (which opens a
 * VM's TAP and gives it to QEMU) on one side and the kernel on the other.
 * Touches network links whose names it is given, and
 * /proc/sys/net/ipv4/ip_forward. Needs CAP_NET_ADMIN.
 *
 * A TAP is not persistent: it lives while a descriptor of it is open, so
 * it goes with its QEMU (a stop, a destroy, a kill -9) and nothing stale
 * is ever left of it.
 */
#ifndef BHATTI_NET_LINK_H
#define BHATTI_NET_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* Interface names fit IFNAMSIZ (15 characters). */
#define LINK_NAME_MAX 16

bool link_exists(const char *name);
/* The bridge `name` with address gw/prefix, up (made if missing). */
int link_bridge_up(const char *name, uint32_t gw, unsigned prefix, struct err *e);
/* Remove the bridge (none: 0). */
int link_bridge_delete(const char *name, struct err *e);
/* A new TAP `name` (virtio-net headers, no packet info), down: its
 * descriptor, close-on-exec. */
int link_tap_open(const char *name, struct err *e);
/* Rename tap to new_name (when not NULL; a link is renamed while down),
 * put it on bridge and bring it up. */
int link_tap_join(const char *tap, const char *new_name, const char *bridge, struct err *e);
/* ip_forward on. */
int link_forwarding_on(struct err *e);

#endif
