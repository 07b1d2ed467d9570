/* tui.h — `bhatti tui`: the full-screen dashboard (docs/tui.md). The one
 * header of tui/ that the CLI sees (cli/cmd-tui.c includes it as
 * "../tui/tui.h"); everything else in tui/ is private to it.
 *
 * tui/ sits beside cli/ on the client library (client/: settings, async
 * HTTP and WebSocket calls, shell sessions) and shared/ (the event loop),
 * with ncursesw and libvterm. Files: app.c (the loop, frames, keys,
 * dialogs), term.c (the terminal: ncurses set up and always restored,
 * colours from the theme), feed.c (what comes from the daemon), model.c
 * (the sandboxes, no I/O), theme.c (themes as data), pane.c (a terminal
 * in memory over libvterm, no I/O), panes.c (shell panes: pane + session
 * + drawing), view-*.c (one per view).
 */
#ifndef BHATTI_TUI_H
#define BHATTI_TUI_H

#include "client.h"
#include "err.h"

struct tui_opts {
	const struct client_settings *set;   /* as the CLI resolved them */
	struct client *client;
	const char *theme;                    /* --theme, or NULL */
};

/* Run until the user quits: 0, or -errno with e saying why it could not
 * start (not a terminal, a bad theme). The terminal is restored whatever
 * happens. */
int tui_run(const struct tui_opts *o, struct err *e);

#endif
