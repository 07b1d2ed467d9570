/* names — new sandbox ids. What a name or an id may look like is decided
 * by shared/valid.h (included here for the store's users).
 *
 *   sandbox id:  VALID_SANDBOX_ID_LEN lower-case hex characters, e.g. "3f9a0c11be42"
 */
#ifndef BHATTI_NAMES_H
#define BHATTI_NAMES_H

#include <stdbool.h>

#include "valid.h"

/* A new random sandbox id (libsodium's generator) into out. */
void sandbox_id_new(char out[VALID_SANDBOX_ID_LEN + 1]);

#endif
