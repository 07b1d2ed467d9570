/* serve.h — `bhatti serve`, the daemon's entry point (daemon/serve.c),
 * called from the command table in cli/main.c. */
#ifndef BHATTI_SERVE_H
#define BHATTI_SERVE_H

int cmd_serve(int argc, char **argv);

#endif
