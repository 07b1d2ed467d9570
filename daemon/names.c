/* names.c — new sandbox ids (see names.h). Sits between the daemon's
 * sandbox core and libsodium's random generator; touches nothing else. */
#include <sodium.h>
#include <stdlib.h>

#include "names.h"

void sandbox_id_new(char out[VALID_SANDBOX_ID_LEN + 1])
{
	unsigned char r[VALID_SANDBOX_ID_LEN / 2];

	if (sodium_init() < 0)
		abort(); /* no usable random source: nothing can be created safely */
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, VALID_SANDBOX_ID_LEN + 1, r, sizeof(r));
}
