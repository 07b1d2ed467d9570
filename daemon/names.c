/* names.c — validation of names and sandbox ids, and new sandbox ids
 * (see names.h). Sits between the store, the settings, the CLI and the API
 * handlers on one side and libsodium's random generator on the other;
 * touches nothing else. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "util.h"

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool name_valid(const char *s)
{
	if (!s || !is_alnum(s[0]))
		return false;
	size_t n = 1;
	for (; s[n]; n++) {
		if (n >= NAME_MAX_LEN)
			return false;
		if (!is_alnum(s[n]) && s[n] != '.' && s[n] != '_' && s[n] != '-')
			return false;
	}
	return true;
}

bool sandbox_id_valid(const char *s)
{
	if (!s)
		return false;
	for (size_t i = 0; i < SANDBOX_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[SANDBOX_ID_LEN] == '\0';
}

void sandbox_id_new(char out[SANDBOX_ID_LEN + 1])
{
	unsigned char r[SANDBOX_ID_LEN / 2];

	if (sodium_init() < 0)
		abort(); /* no usable random source: nothing can be created safely */
	randombytes_buf(r, sizeof(r));
	sodium_bin2hex(out, SANDBOX_ID_LEN + 1, r, sizeof(r));
}
