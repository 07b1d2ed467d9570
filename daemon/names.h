/* names — what a user, sandbox, secret or image name and a sandbox id may
 * look like, checked in one place.
 *
 *   name:        [a-zA-Z0-9][a-zA-Z0-9._-]{0,62}  (users, sandboxes, secrets)
 *   sandbox id:  12 lower-case hex characters, e.g. "3f9a0c11be42"
 */
#ifndef BHATTI_NAMES_H
#define BHATTI_NAMES_H

#include <stdbool.h>

#define NAME_MAX_LEN   63
#define SANDBOX_ID_LEN 12

/* The rule above; NULL is not valid. */
bool name_valid(const char *s);
#define NAME_RULE "1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"

bool sandbox_id_valid(const char *s);

/* A new random sandbox id (libsodium's generator) into out. */
void sandbox_id_new(char out[SANDBOX_ID_LEN + 1]);

#endif
