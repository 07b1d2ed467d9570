/* routes.c — the daemon's one route table: method, path pattern, handler,
 * flags, body limit and rate-limit class (docs/api.md documents each).
 * ":id" is a sandbox name or id. The classes are the original system's:
 * exec (commands, file writes, shells), read (everything else); a create
 * takes its token in the handler (an existing name answers without one). */
#include "api.h"
#include "util.h"

#define MiB (1u << 20)

const struct route routes[] = {
	{ HTTP_GET, "/health", api_health, ROUTE_NO_AUTH, 0, RATE_NONE },
	{ HTTP_POST, "/sandboxes", api_sandbox_create, 0, 0, RATE_NONE },
	{ HTTP_GET, "/sandboxes", api_sandbox_list, 0, 0, RATE_READ },
	{ HTTP_GET, "/sandboxes/:id", api_sandbox_get, 0, 0, RATE_READ },
	{ HTTP_PATCH, "/sandboxes/:id", api_sandbox_patch, 0, 0, RATE_READ },
	{ HTTP_DELETE, "/sandboxes/:id", api_sandbox_delete, 0, 0, RATE_READ },
	{ HTTP_POST, "/sandboxes/:id/exec", api_exec, 0, 64 * MiB, RATE_EXEC },
	{ HTTP_WS, "/sandboxes/:id/exec/ws", api_exec_ws, 0, 0, RATE_EXEC },
	{ HTTP_WS, "/sandboxes/:id/ws", api_shell, 0, 0, RATE_EXEC },
	{ HTTP_GET, "/sandboxes/:id/sessions", api_sessions, 0, 0, RATE_READ },
	{ HTTP_WS, "/sandboxes/:id/execs", api_execs, 0, 0, RATE_READ },
	{ HTTP_GET, "/sandboxes/:id/files", api_file_get, 0, 0, RATE_READ },
	{ HTTP_HEAD, "/sandboxes/:id/files", api_file_head, 0, 0, RATE_READ },
	{ HTTP_PUT, "/sandboxes/:id/files", api_file_put, ROUTE_STREAM_BODY, 100 * MiB, RATE_EXEC },
	{ HTTP_POST, "/sandboxes/:id/stop", api_sandbox_stop, 0, 0, RATE_READ },
	{ HTTP_POST, "/sandboxes/:id/start", api_sandbox_start, 0, 0, RATE_READ },
	{ HTTP_GET, "/secrets", api_secret_list, 0, 0, RATE_READ },
	{ HTTP_POST, "/secrets", api_secret_set, 0, 0, RATE_READ },
	{ HTTP_DELETE, "/secrets/:name", api_secret_delete, 0, 0, RATE_READ },
	{ HTTP_GET, "/events", api_events, 0, 0, RATE_READ },
	{ HTTP_WS, "/events", api_events, 0, 0, RATE_READ },
	/* named snapshots and fork (a copy takes a create token in the handler) */
	{ HTTP_POST, "/sandboxes/:id/snapshot", api_sandbox_snapshot, 0, 0, RATE_NONE },
	{ HTTP_POST, "/sandboxes/:id/fork", api_sandbox_fork, 0, 0, RATE_NONE },
	{ HTTP_GET, "/snapshots", api_snapshot_list, 0, 0, RATE_READ },
	{ HTTP_GET, "/snapshots/:name", api_snapshot_get, 0, 0, RATE_READ },
	{ HTTP_DELETE, "/snapshots/:name", api_snapshot_delete, 0, 0, RATE_READ },
	{ HTTP_POST, "/snapshots/:name/resume", api_snapshot_resume, 0, 0, RATE_NONE },
	/* images */
	{ HTTP_GET, "/images", api_image_list, 0, 0, RATE_READ },
	{ HTTP_POST, "/sandboxes/:id/publish", api_publish_add, 0, 0, RATE_READ },
	{ HTTP_GET, "/sandboxes/:id/publish", api_publish_list, 0, 0, RATE_READ },
	{ HTTP_DELETE, "/sandboxes/:id/publish/:port", api_publish_remove, 0, 0, RATE_READ },
	{ HTTP_GET, "/sandboxes/:id/ports", api_ports, 0, 0, RATE_READ },
	{ HTTP_GET, "/ports", api_ports_all, 0, 0, RATE_READ },
};

const size_t routes_count = ARRAY_SIZE(routes);
