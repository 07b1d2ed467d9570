/* age.c — the age v1 format with X25519 recipients over libsodium (see
 * age.h): HKDF-SHA256, header MAC, STREAM payload, bech32 keys, the
 * identity file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "age.h"

#define AGE_INTRO "age-encryption.org/v1\n"
#define X25519_INFO "age-encryption.org/v1/X25519"
#define CHUNK (64u << 10)
#define TAG crypto_aead_chacha20poly1305_IETF_ABYTES
#define SECRET_HRP "age-secret-key-"
#define PUBLIC_HRP "age"

/* ---- HKDF-SHA256 (RFC 5869), 32 bytes of output ---------------------------- */

static void hkdf32(uint8_t out[32], const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
		   size_t salt_len, const char *info)
{
	uint8_t prk[32];
	crypto_auth_hmacsha256_state st;
	/* an empty salt is an empty HMAC key (never NULL: libsodium declares
	 * the key non-null) */
	crypto_auth_hmacsha256_init(&st, salt ? salt : (const uint8_t *)"", salt_len);
	crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
	crypto_auth_hmacsha256_final(&st, prk);
	const uint8_t one = 1;
	crypto_auth_hmacsha256_init(&st, prk, sizeof(prk));
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)info, strlen(info));
	crypto_auth_hmacsha256_update(&st, &one, 1);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(&st, sizeof(st));
}

/* ---- base64 without padding, canonical ------------------------------------- */

static void b64_add(struct buf *out, const uint8_t *p, size_t n)
{
	char tmp[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
	/* callers encode at most 48 bytes at a time (one 64-column line) */
	sodium_bin2base64(tmp, sizeof(tmp), p, n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	buf_adds(out, tmp);
}

/* Decode exactly want bytes from s[0..len), canonically. */
static bool b64_get(const char *s, size_t len, uint8_t *out, size_t want)
{
	size_t got;
	const char *end;
	if (len != sodium_base64_ENCODED_LEN(want, sodium_base64_VARIANT_ORIGINAL_NO_PADDING) - 1)
		return false;
	if (sodium_base642bin(out, want, s, len, NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL_NO_PADDING) != 0 ||
	    got != want || end != s + len)
		return false;
	/* canonical: the unused low bits of the last character are zero */
	char re[64];
	sodium_bin2base64(re, sizeof(re), out, want, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	return memcmp(re, s, len) == 0;
}

/* ---- bech32 (BIP 173) ------------------------------------------------------- */

static const char B32[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t polymod(const uint8_t *v, size_t n)
{
	static const uint32_t g[5] = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3 };
	uint32_t chk = 1;
	for (size_t i = 0; i < n; i++) {
		uint8_t top = (uint8_t)(chk >> 25);
		chk = ((chk & 0x1ffffff) << 5) ^ v[i];
		for (int k = 0; k < 5; k++)
			if ((top >> k) & 1)
				chk ^= g[k];
	}
	return chk;
}

/* hrp expanded + data (5-bit values), for the checksum. */
static size_t expand(const char *hrp, const uint8_t *data, size_t n, uint8_t *out)
{
	size_t h = strlen(hrp), k = 0;
	for (size_t i = 0; i < h; i++)
		out[k++] = (uint8_t)(hrp[i] >> 5);
	out[k++] = 0;
	for (size_t i = 0; i < h; i++)
		out[k++] = (uint8_t)(hrp[i] & 31);
	memcpy(out + k, data, n);
	return k + n;
}

static char *bech32_encode(const char *hrp, const uint8_t key[32], bool upper)
{
	uint8_t d[64 + 6], v[160];
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (int i = 0; i < 32; i++) {
		acc = (acc << 8) | key[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			d[n++] = (uint8_t)((acc >> bits) & 31);
		}
	}
	if (bits)
		d[n++] = (uint8_t)((acc << (5 - bits)) & 31);
	size_t m = expand(hrp, d, n, v);
	memset(v + m, 0, 6);
	uint32_t pm = polymod(v, m + 6) ^ 1;
	for (int i = 0; i < 6; i++)
		d[n + (size_t)i] = (uint8_t)((pm >> (5 * (5 - i))) & 31);
	struct buf b = BUF_INIT;
	for (const char *p = hrp; *p; p++)
		buf_addch(&b, upper ? (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p) : *p);
	buf_addch(&b, '1');
	for (size_t i = 0; i < n + 6; i++) {
		char c = B32[d[i]];
		buf_addch(&b, upper && c >= 'a' && c <= 'z' ? (char)(c - 32) : c);
	}
	return buf_detach(&b, NULL);
}

/* Decode s (all lower or all upper case) with hrp into 32 bytes. */
static bool bech32_decode(const char *hrp, const char *s, size_t len, uint8_t key[32])
{
	char low[128];
	bool has_low = false, has_up = false;
	if (len >= sizeof(low) || len > 90)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		has_low |= c >= 'a' && c <= 'z';
		has_up |= c >= 'A' && c <= 'Z';
		low[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
	}
	low[len] = '\0';
	size_t h = strlen(hrp);
	if ((has_low && has_up) || len < h + 1 + 6 || strncmp(low, hrp, h) != 0 || low[h] != '1')
		return false;
	uint8_t d[96] = { 0 }, v[200];
	size_t n = 0;
	for (size_t i = h + 1; i < len; i++) {
		const char *p = strchr(B32, low[i]);
		if (!p || !low[i])
			return false;
		d[n++] = (uint8_t)(p - B32);
	}
	size_t m = expand(hrp, d, n, v);
	if (polymod(v, m) != 1)
		return false;
	n -= 6;
	uint32_t acc = 0;
	int bits = 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 5) | d[i];
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (k == 32)
				return false;
			key[k++] = (uint8_t)((acc >> bits) & 0xff);
		}
	}
	return k == 32 && bits < 5 && (acc & ((1u << bits) - 1)) == 0;
}

char *age_recipient_string(const uint8_t pub[32])
{
	return bech32_encode(PUBLIC_HRP, pub, false);
}

int age_parse_recipient(const char *s, uint8_t ret_pub[32], struct err *e)
{
	if (!bech32_decode(PUBLIC_HRP, s, strlen(s), ret_pub))
		return err_set(e, EINVAL, "not an age X25519 recipient: '%s'", s);
	return 0;
}

/* ---- identity file ------------------------------------------------------------ */

int age_identity_parse(const char *text, size_t len, struct age_identity *ret, struct err *e)
{
	const char *p = text, *end = text + len;
	int found = 0;
	struct age_identity id;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		size_t ll = (size_t)(le - p);
		if (ll && p[ll - 1] == '\r')
			ll--;
		if (ll && p[0] != '#') {
			if (!bech32_decode(SECRET_HRP, p, ll, id.secret) || found)
				return err_set(e, EINVAL, "malformed age identity (expected one "
							  "AGE-SECRET-KEY-1... line)");
			found = 1;
		}
		p = nl ? nl + 1 : end;
	}
	if (!found)
		return err_set(e, EINVAL, "no AGE-SECRET-KEY-1... line in the age identity");
	crypto_scalarmult_base(id.public, id.secret);
	*ret = id;
	sodium_memzero(&id, sizeof(id));
	return 0;
}

static int create_identity(const char *path, struct age_identity *ret, struct err *e)
{
	struct age_identity id;
	randombytes_buf(id.secret, sizeof(id.secret));
	crypto_scalarmult_base(id.public, id.secret);
	char *sk = bech32_encode(SECRET_HRP, id.secret, true), *pk = age_recipient_string(id.public);
	char when[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	struct buf b = BUF_INIT, tmp = BUF_INIT;
	buf_addf(&b, "# created: %s\n# public key: %s\n%s\n", when, pk, sk);
	sodium_memzero(sk, strlen(sk));
	free(sk);
	free(pk);
	buf_addf(&tmp, "%s.tmp", path);
	int rc = 0;
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, b.data, b.len) < 0 || fsync(fd) < 0)
		rc = err_set(e, errno, "cannot write '%s': %s", tmp.data, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (rc == 0 && link(tmp.data, path) < 0)   /* never replace an existing key */
		rc = err_set(e, errno, "cannot create '%s': %s", path, strerror(errno));
	unlink(tmp.data);
	sodium_memzero(b.data, b.len);
	buf_release(&b);
	buf_release(&tmp);
	if (rc == 0)
		*ret = id;
	sodium_memzero(&id, sizeof(id));
	return rc;
}

int age_identity_load_or_create(const char *path, struct age_identity *ret, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		int rc = create_identity(path, ret, e);
		if (rc != -EEXIST)
			return rc;
		fd = open(path, O_RDONLY | O_CLOEXEC);   /* another process made it */
	}
	if (fd < 0)
		return err_set(e, errno, "cannot open '%s': %s", path, strerror(errno));
	struct stat st;
	char text[4096];
	ssize_t n = -1;
	int rc = 0;
	if (fstat(fd, &st) < 0)
		rc = err_set(e, errno, "cannot stat '%s': %s", path, strerror(errno));
	else if (st.st_mode & 077)
		rc = err_set(e, EPERM, "'%s' is readable by others (mode %04o): chmod 600 it",
			     path, st.st_mode & 07777);
	else if ((n = read(fd, text, sizeof(text))) < 0)
		rc = err_set(e, errno, "cannot read '%s': %s", path, strerror(errno));
	close(fd);
	if (rc == 0)
		rc = age_identity_parse(text, (size_t)n, ret, e);
	if (rc < 0 && rc != -EPERM && e && e->code == EINVAL)
		err_prefix(e, "'%s'", path);
	sodium_memzero(text, sizeof(text));
	return rc;
}

/* ---- encrypt ------------------------------------------------------------------ */

static void chunk_nonce(uint8_t nonce[12], uint64_t counter, bool last)
{
	memset(nonce, 0, 12);
	for (int i = 0; i < 8; i++)
		nonce[10 - i] = (uint8_t)(counter >> (8 * i));
	nonce[11] = last ? 1 : 0;
}

int age_encrypt(const uint8_t recipient_pub[32], const void *pt, size_t n, struct buf *out,
		struct err *e)
{
	uint8_t file_key[16], eph[32], share[32], shared[32], salt[64], wrap[32], body[32];
	uint8_t nonce12[12] = { 0 };
	randombytes_buf(file_key, sizeof(file_key));
	randombytes_buf(eph, sizeof(eph));
	crypto_scalarmult_base(share, eph);
	if (crypto_scalarmult(shared, eph, recipient_pub) != 0)
		return err_set(e, EINVAL, "bad age recipient key");
	memcpy(salt, share, 32);
	memcpy(salt + 32, recipient_pub, 32);
	hkdf32(wrap, shared, 32, salt, 64, X25519_INFO);
	crypto_aead_chacha20poly1305_ietf_encrypt(body, NULL, file_key, 16, NULL, 0, NULL, nonce12,
						  wrap);
	size_t start = out->len;
	buf_adds(out, AGE_INTRO "-> X25519 ");
	b64_add(out, share, 32);
	buf_addch(out, '\n');
	b64_add(out, body, 32);
	buf_adds(out, "\n---");
	uint8_t mac_key[32], mac[32];
	hkdf32(mac_key, file_key, 16, NULL, 0, "header");
	crypto_auth_hmacsha256(mac, (const uint8_t *)out->data + start, out->len - start, mac_key);
	buf_addch(out, ' ');
	b64_add(out, mac, 32);
	buf_addch(out, '\n');

	uint8_t pnonce[16], pkey[32];
	randombytes_buf(pnonce, sizeof(pnonce));
	buf_add(out, pnonce, sizeof(pnonce));
	hkdf32(pkey, file_key, 16, pnonce, 16, "payload");
	const uint8_t *p = pt;
	uint64_t counter = 0;
	size_t off = 0;
	do {
		size_t len = MIN((size_t)CHUNK, n - off);
		bool last = off + len == n;
		chunk_nonce(nonce12, counter++, last);
		buf_grow(out, len + TAG);
		unsigned long long clen;
		crypto_aead_chacha20poly1305_ietf_encrypt((uint8_t *)out->data + out->len, &clen,
							  p + off, len, NULL, 0, NULL, nonce12, pkey);
		buf_setlen(out, out->len + (size_t)clen);
		off += len;
	} while (off < n);
	sodium_memzero(file_key, sizeof(file_key));
	sodium_memzero(eph, sizeof(eph));
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(wrap, sizeof(wrap));
	sodium_memzero(mac_key, sizeof(mac_key));
	sodium_memzero(pkey, sizeof(pkey));
	return 0;
}

/* ---- decrypt ------------------------------------------------------------------ */

/* One line of the header: [p, eol) without the '\n'; NULL at the end. */
static const char *line(const char **pp, const char *end, size_t *ret_len)
{
	const char *p = *pp;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl)
		return NULL;
	*ret_len = (size_t)(nl - p);
	*pp = nl + 1;
	return p;
}

static int bad(struct err *e, const char *why)
{
	return err_set(e, EBADMSG, "cannot decrypt: %s", why);
}

int age_decrypt(const struct age_identity *id, const void *ct, size_t n, struct buf *out,
		struct err *e)
{
	const char *p = ct, *end = p + n;
	size_t len;
	const char *l = line(&p, end, &len);
	if (!l || len != strlen(AGE_INTRO) - 1 || memcmp(l, AGE_INTRO, len) != 0)
		return bad(e, "not an age v1 file");
	uint8_t file_key[16];
	bool have_key = false;
	const char *mac_line;
	for (;;) {
		l = line(&p, end, &len);
		if (!l)
			return bad(e, "truncated header");
		if (len >= 3 && memcmp(l, "---", 3) == 0) {
			mac_line = l;
			break;
		}
		if (len < 3 || memcmp(l, "-> ", 3) != 0)
			return bad(e, "malformed header");
		/* the stanza: arguments on this line, body lines until a short one */
		const char *args = l + 3;
		size_t alen = len - 3;
		char body_b64[4096];
		size_t blen = 0;
		for (;;) {
			size_t bl;
			const char *b = line(&p, end, &bl);
			if (!b || bl > 64 || blen + bl >= sizeof(body_b64))
				return bad(e, "malformed stanza");
			memcpy(body_b64 + blen, b, bl);
			blen += bl;
			if (bl < 64)
				break;
		}
		if (have_key || alen != 7 + 43 || memcmp(args, "X25519 ", 7) != 0)
			continue;   /* grease, another recipient type, or done */
		uint8_t share[32], body[32], shared[32], salt[64], wrap[32];
		uint8_t nonce12[12] = { 0 };
		if (!b64_get(args + 7, 43, share, 32) || !b64_get(body_b64, blen, body, 32))
			return bad(e, "malformed X25519 stanza");
		if (crypto_scalarmult(shared, id->secret, share) != 0)
			return bad(e, "bad X25519 share");
		memcpy(salt, share, 32);
		memcpy(salt + 32, id->public, 32);
		hkdf32(wrap, shared, 32, salt, 64, X25519_INFO);
		have_key = crypto_aead_chacha20poly1305_ietf_decrypt(file_key, NULL, NULL, body, 32,
								     NULL, 0, nonce12, wrap) == 0;
		sodium_memzero(shared, sizeof(shared));
		sodium_memzero(wrap, sizeof(wrap));
	}
	if (!have_key)
		return bad(e, "not encrypted to this key");
	uint8_t mac_key[32], mac[32], want[32];
	int rc = 0;
	hkdf32(mac_key, file_key, 16, NULL, 0, "header");
	crypto_auth_hmacsha256(want, ct, (size_t)(mac_line + 3 - (const char *)ct), mac_key);
	if (len != 3 + 1 + 43 || mac_line[3] != ' ' || !b64_get(mac_line + 4, 43, mac, 32) ||
	    crypto_verify_32(mac, want) != 0)
		rc = bad(e, "the header was tampered with");
	const uint8_t *q = (const uint8_t *)p, *qend = (const uint8_t *)end;
	if (rc == 0 && qend - q < 16 + (ptrdiff_t)TAG)
		rc = bad(e, "truncated payload");
	uint8_t pkey[32];
	size_t start = out->len;
	if (rc == 0) {
		hkdf32(pkey, file_key, 16, q, 16, "payload");
		q += 16;
		uint64_t counter = 0;
		uint8_t nonce12[12];
		while (rc == 0) {
			size_t left = (size_t)(qend - q);
			bool last = left <= CHUNK + TAG;
			size_t clen = last ? left : CHUNK + TAG;
			if (clen < TAG || (last && clen == TAG && counter > 0)) {
				rc = bad(e, "truncated payload");
				break;
			}
			chunk_nonce(nonce12, counter++, last);
			buf_grow(out, clen - TAG);
			if (crypto_aead_chacha20poly1305_ietf_decrypt((uint8_t *)out->data + out->len,
								      NULL, NULL, q, clen, NULL, 0,
								      nonce12, pkey) != 0) {
				rc = bad(e, "the payload was tampered with or truncated");
				break;
			}
			buf_setlen(out, out->len + clen - TAG);
			q += clen;
			if (last)
				break;
		}
		sodium_memzero(pkey, sizeof(pkey));
	}
	if (rc < 0) {
		sodium_memzero(out->data + start, out->len - start);
		buf_setlen(out, start);
	}
	sodium_memzero(file_key, sizeof(file_key));
	sodium_memzero(mac_key, sizeof(mac_key));
	return rc;
}

/* ---- wrapped keys ------------------------------------------------------------ */

int age_wrap_key(const uint8_t recipient_pub[32], const uint8_t key[32], char **ret,
		 struct err *e)
{
	struct buf ct = BUF_INIT;
	int r = age_encrypt(recipient_pub, key, 32, &ct, e);
	if (r == 0) {
		size_t n = sodium_base64_ENCODED_LEN(ct.len, sodium_base64_VARIANT_ORIGINAL);
		*ret = xmalloc(n);
		sodium_bin2base64(*ret, n, (const uint8_t *)ct.data, ct.len,
				  sodium_base64_VARIANT_ORIGINAL);
	}
	buf_release(&ct);
	return r;
}

int age_unwrap_key(const struct age_identity *id, const char *wrapped, uint8_t ret_key[32],
		   struct err *e)
{
	size_t len = strlen(wrapped), n = 0, cap = len / 4 * 3 + 3;
	uint8_t *ct = xmalloc(cap);
	struct buf pt = BUF_INIT;
	int r = 0;
	if (sodium_base642bin(ct, cap, wrapped, len, NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		r = err_set(e, EBADMSG, "the wrapped key is not base64");
	else if ((r = age_decrypt(id, ct, n, &pt, e)) == 0 && pt.len != 32)
		r = err_set(e, EBADMSG, "the wrapped key is not a 32-byte key");
	if (r == 0)
		memcpy(ret_key, pt.data, 32);
	sodium_memzero(pt.data, pt.len);
	buf_release(&pt);
	free(ct);
	return r;
}
