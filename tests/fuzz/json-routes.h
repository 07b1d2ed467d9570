/* json-routes.h — the routes fuzz-json sends its bodies to, shared with
 * gen-seeds (its seeds start with a route's number). Every route whose
 * handler parses a JSON body by a json_field table, and the shell's text
 * messages (api-shell.c's resize table). Not product code. */
#ifndef BHATTI_FUZZ_JSON_ROUTES_H
#define BHATTI_FUZZ_JSON_ROUTES_H

enum { JR_CREATE, JR_RENAME, JR_EXEC, JR_SECRET, JR_RESIZE, JR_SNAPSHOT, JR_FORK, JR_RESUME,
       JR_COUNT };

static const struct json_route {
	const char *name, *method, *path;
} json_routes[JR_COUNT] = {
	[JR_CREATE] = { "create", "POST", "/sandboxes" },
	[JR_RENAME] = { "rename", "PATCH", "/sandboxes/box" },
	[JR_EXEC] = { "exec", "POST", "/sandboxes/box/exec" },
	[JR_SECRET] = { "secret", "POST", "/secrets" },
	[JR_RESIZE] = { "resize", "GET", "/sandboxes/box/ws" },   /* a text message */
	[JR_SNAPSHOT] = { "snapshot", "POST", "/sandboxes/box/snapshot" },
	[JR_FORK] = { "fork", "POST", "/sandboxes/box/fork" },
	[JR_RESUME] = { "resume", "POST", "/snapshots/snap/resume" },
};

#endif
