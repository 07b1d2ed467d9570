/* cmd-tui.c — `bhatti tui`: the full-screen dashboard (docs/tui.md). The
 * settings are the CLI's (--url, --token, BHATTI_URL, BHATTI_TOKEN,
 * ~/.bhatti/config.yaml), plus the theme (--theme > BHATTI_THEME >
 * theme: in the config). The TUI itself is in tui/, seen only through
 * "../tui/tui.h" (docs/architecture.md, "Layers").
 */
#include "cli.h"
#include "../tui/tui.h"

static int run(struct cli *c)
{
	struct tui_opts o = {
		.client = cli_client(c),
		.set = &c->set,
		.theme = args_get(&c->args, "--theme"),
	};
	struct err e = ERR_INIT;
	if (tui_run(&o, &e) < 0)
		return cli_error(1, "%s", err_str(&e));
	return 0;
}

static const struct opt opts[] = { { "--theme", NULL, OPT_VALUE }, OPT_END };

const struct cli_cmd cmd_tui_entry = {
	.name = "tui",
	.summary = "full-screen dashboard: live sandboxes, shells in panes",
	.usage = "[--theme NAME|FILE]",
	.help = "Keys: ? in the TUI (and docs/tui.md). Themes: default, light, mono\n"
		"(--theme, BHATTI_THEME or theme: in ~/.bhatti/config.yaml; NO_COLOR: mono).",
	.opts = opts,
	.max_args = 0,
	.run = run,
};
