/* settings — the server configuration: bhatti serve's config.yaml, read
 * strictly through shared/config.h, plus the defaults of every key.
 *
 *   listen: 127.0.0.1:8080      # host:port, :port (all interfaces), [::1]:port
 *   data_dir: /var/lib/bhatti   # absolute
 *   images_dir: /srv/images     # absolute; default data_dir/images
 *   engine: qemu
 *   accel: auto                 # auto | kvm | tcg
 *   vm_uids: 200000-299999      # each VM's QEMU runs as its own uid from this
 *                               # range (needed when the daemon runs as root)
 *   default_image: tiny
 *   pool_size: 1                # warm clones per template, 0 = none
 *   log_level: info             # debug | info | warn | error | off
 *   defaults:                   # a new sandbox's size
 *     cpus: 1
 *     memory_mb: 512
 *   limits:                     # a new user's limits, and request limits
 *     max_sandboxes: 20
 *     max_cpus: 4
 *     max_memory_mb: 4096
 *     creates_per_min: 10       # per user; 0 = no limit
 *     execs_per_min: 120        # per user: execs, file writes, shells; 0 = no limit
 *     reads_per_min: 1200       # per user: every other request; 0 = no limit
 *     max_execs_per_user: 32    # execs running at once, per user; 0 = no limit
 *     max_execs: 256            # execs running at once, everyone; 0 = no limit
 *     max_conns_per_ip: 128     # open API connections per client address; 0 = no limit
 *     max_secrets: 100          # per user (the same for every user); 0 = no secrets
 *     max_snapshot_disk: 20G    # per user: disk held by cold and named snapshots; 0 = no limit
 *     max_snapshots: 5          # named snapshots per user (the same for every user); 0 = none
 *     memory_budget: 0          # guest RAM on tmpfs, all users; 0 = auto (the
 *                               # tmpfs size, at most 3/4 of the host's memory)
 *     max_body: 100M            # largest request body
 *   thermal:                    # docs/thermal.md
 *     warm_after: 30s           # idle hot → warm (paused); "never"
 *     cold_after: 30m           # warm → cold (snapshot to disk); "never"
 *     check_every: 5s           # how often a hot sandbox's guest is asked
 *     cpu_busy_percent: 5       # its user processes' CPU that counts as busy
 *     outbound_tcp: true        # an established outbound connection keeps hot
 *     max_concurrent_wakes: 10  # cold wakes at once; beyond: 503
 *   network:                    # guest networking (net.h)
 *     enabled: true             # a NIC in every sandbox (needs root)
 *     subnet_pool: 10.201.0.0/16  # per-user /24s; default: the first /16 of
 *                               # 10.201-10.254 the host's routes do not touch
 *     dns_upstreams: [1.2.3.4]  # default: the host's resolvers that are not loopback
 *     egress: allow             # allow | deny: a new sandbox's default policy
 *     same_user: true           # one user's sandboxes reach each other
 *   exec:
 *     timeout: 300s             # an exec that names no timeout (0 = none)
 *     max_timeout: 24h          # the longest one may name; timeout_sec 0 = none
 *   public_proxy_listen: :8081  # the public proxy of published ports (none
 *                               # when unset): /<alias>/... and Host routing
 *   domain: example.com         # published ports are <alias>.example.com
 *   proxy:                      # the public proxy's limits (0 = no limit)
 *     requests_per_ip_per_min: 1500     # per client address (burst: a third)
 *     requests_per_alias_per_min: 5000  # per published port (burst: a third)
 *     max_conns: 4096                   # open connections, all clients
 *     max_conns_per_ip: 256             # open connections per client address
 *   tls:                        # HTTPS for the API and the public proxy (both
 *     cert: /etc/bhatti/tls.crt #   or neither; PEM, the chain after the leaf)
 *     key: /etc/bhatti/tls.key
 *     http_listen: ":80"        # plain HTTP beside the public proxy: ACME
 *                               # http-01 answers, everything else 301 to https
 *     acme:                     # certificates from ACME, run by the daemon (acme.h)
 *       email: you@example.com  # turns it on: the account's contact
 *       directory: https://acme-v02.api.letsencrypt.org/directory  # (the default)
 *       ca: /etc/bhatti/acme-ca.pem  # the CA of the ACME server's own HTTPS
 *                               # (pebble); default: the system's
 *       names: [api.example.com]  # more names than <alias>.<domain>
 *       renew_before: 30d       # renew when less is left
 *
 * Ownership: settings_load() fills a struct the caller releases with
 * settings_release(); every string in it is heap memory.
 */
#ifndef BHATTI_SETTINGS_H
#define BHATTI_SETTINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* The ranges of a user's limits (limits.* here, and per user). */
#define LIMIT_MAX_SANDBOXES 100000
#define LIMIT_MAX_CPUS 1024
#define LIMIT_MIN_MEMORY_MB 64
#define LIMIT_MAX_MEMORY_MB (1 << 24)
#define LIMIT_MAX_SECRETS 100000

/* The longest exec timeout a config may allow (exec.max_timeout). */
#define SETTINGS_EXEC_TIMEOUT_MAX_MS (7ull * 86400 * 1000)

#define SETTINGS_DEFAULT_PATH "/etc/bhatti/config.yaml"
#define SETTINGS_ACME_DIRECTORY "https://acme-v02.api.letsencrypt.org/directory"
#define SETTINGS_ENV "BHATTI_CONFIG"

struct settings {
	char *path;             /* the file read; NULL when none was */
	char *listen;
	char *data_dir;
	char *images_dir;
	char *engine;
	char *accel;
	char *vm_uids;          /* "FIRST-LAST" (settings_parse_uids); NULL = none */
	char *vm_user;          /* an old key, refused with a hint (never set) */
	char *default_image;
	int64_t pool_size;          /* 0 = none (-1 in a config is read as 0) */
	char *log_level;
	struct {
		int64_t cpus;
		int64_t memory_mb;
		uint64_t disk_size;     /* bytes; 0 = the image's size */
	} defaults;
	struct {
		int64_t max_sandboxes;
		int64_t max_cpus;
		int64_t max_memory_mb;
		int64_t creates_per_min;
		int64_t execs_per_min;
		int64_t reads_per_min;
		int64_t max_execs_per_user;
		int64_t max_execs;
		int64_t max_conns_per_ip;
		int64_t max_secrets;    /* per user */
		uint64_t max_snapshot_disk; /* bytes per user; 0 = no limit */
		int64_t max_snapshots;  /* named snapshots per user */
		uint64_t max_disk_size; /* bytes: a sandbox's root disk (create's disk_size) */
		uint64_t memory_budget;     /* bytes; 0 = auto (engine_config.mem_budget) */
		uint64_t max_body;      /* bytes */
	} limits;
	struct {
		uint64_t warm_after;    /* ms, or CONFIG_NEVER */
		uint64_t cold_after;    /* ms, or CONFIG_NEVER */
		uint64_t check_every;   /* ms */
		int64_t cpu_busy_percent;
		bool outbound_tcp;
		int64_t max_concurrent_wakes;
	} thermal;
	struct {
		bool enabled;
		char *subnet_pool;      /* "a.b.0.0/16"; NULL = chosen at start */
		char **dns_upstreams;   /* NULL = from /etc/resolv.conf */
		char *egress;           /* "allow" | "deny" */
		bool same_user;
	} network;
	struct {
		uint64_t timeout_ms;     /* an exec that names none (0: none) */
		uint64_t max_timeout_ms; /* the most one may name (0 given: none) */
	} exec;
	char *public_proxy_listen;  /* NULL: no public proxy */
	char *domain;               /* NULL: no host routing by domain */
	struct {
		int64_t requests_per_ip_per_min;
		int64_t requests_per_alias_per_min;
		int64_t max_conns;
		int64_t max_conns_per_ip;
		char *transport;    /* "auto" (NULL), "agent", "ip" (proxy-up.h) */
	} proxy;
	struct {
		char *cert;         /* PEM chain; NULL: plain HTTP */
		char *key;          /* PEM private key */
		char *http_listen;  /* NULL: none */
		struct {
			char *email;        /* NULL: no ACME */
			char *directory;
			char *ca;           /* NULL: the system's CAs */
			char **names;       /* NULL: none */
			uint64_t renew_before;  /* ms */
		} acme;
	} tls;
};

/* Read the configuration from path_or_null, else $BHATTI_CONFIG, else
 * SETTINGS_DEFAULT_PATH. A missing file at the default path means all
 * defaults; a file named by the argument or the environment must exist.
 * Errors name the file, the line and the key. */
int settings_load(const char *path_or_null, struct settings *ret, struct err *e);

/* The same for text (name stands for the file in messages), for tests. */
int settings_load_string(const char *name, const char *text, struct settings *ret,
			 struct err *e);

void settings_release(struct settings *s);

/* The API and the public proxy speak HTTPS: a certificate of one's own,
 * or ACME's. */
static inline bool settings_https(const struct settings *s)
{
	return s->tls.cert || s->tls.acme.email;
}

/* The range of VM uids, "FIRST-LAST" (the same numbers are the VMs'
 * gids): no system account (below 1000), nothing near the top of uid_t. */
#define SETTINGS_UID_MIN 1000
#define SETTINGS_UID_MAX 2147483646
int settings_parse_uids(const char *v, uint32_t *ret_first, uint32_t *ret_count, struct err *e);

/* Split a listen address: "host:port", ":port" (*ret_host = NULL: all
 * interfaces) or "[v6addr]:port"; the port is 1 to 65535. */
int settings_parse_listen(const char *listen, char **ret_host, int *ret_port,
			  struct err *e);

#endif
