/* local.h — the two commands of the host binary that run here rather than
 * against the daemon's API: `bhatti serve` (daemon/serve.c) and `bhatti
 * user …` (daemon/admin.c, the local administration of the store).
 *
 * The only daemon header the CLI sees: cli/main.c puts these in its
 * command table, parses their options against these tables (shared/opt.h)
 * and handles --help and usage errors; each function gets the parsed
 * arguments and returns the process's exit code.
 */
#ifndef BHATTI_LOCAL_H
#define BHATTI_LOCAL_H

#include "opt.h"

/* bhatti serve [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [--log LEVEL] */
extern const struct opt serve_opts[];
int serve_main(const struct args *a);

/* bhatti user create|list|rotate-key|delete; each also takes --data-dir
 * DIR and --config FILE */
extern const struct opt admin_create_opts[];   /* [NAME] --name --max-* */
extern const struct opt admin_list_opts[];     /* --json */
extern const struct opt admin_name_opts[];     /* [NAME] --name */
int admin_user_create(const struct args *a);
int admin_user_list(const struct args *a);
int admin_user_rotate_key(const struct args *a);
int admin_user_delete(const struct args *a);

#endif
