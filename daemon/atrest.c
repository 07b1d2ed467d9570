/* atrest.c — the encrypted formats of a cold snapshot (see atrest.h):
 * subkeys, the memory delta's pages, bitmap and trailer, the device
 * state, their tags. Reads and writes only the fds it is given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atrest.h"
#include "util.h"

#define MEM_MAGIC "bhatti-mem v1\n\0"      /* 16 bytes with its NUL */
#define STATE_MAGIC "bhatti-state v1\n"    /* 16 bytes, no NUL kept */
#define KDF_CONTEXT "bhsnap01"
#define CHUNK (1u << 20)

/* ---- keys ---------------------------------------------------------------- */

void atrest_keys_derive(struct atrest_keys *k, const uint8_t key[ATREST_KEY_BYTES])
{
	crypto_kdf_derive_from_key(k->mem, sizeof(k->mem), 1, KDF_CONTEXT, key);
	crypto_kdf_derive_from_key(k->state, sizeof(k->state), 2, KDF_CONTEXT, key);
	crypto_kdf_derive_from_key(k->mac, sizeof(k->mac), 3, KDF_CONTEXT, key);
}

void atrest_keys_wipe(struct atrest_keys *k)
{
	sodium_memzero(k, sizeof(*k));
}

void atrest_nonce_new(uint8_t nonce[ATREST_NONCE_BYTES])
{
	randombytes_buf(nonce, ATREST_NONCE_BYTES);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static int read_at(int fd, void *p, size_t n, uint64_t off, struct err *e)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(e, errno, "read: %s", strerror(errno));
		if (r == 0)
			return err_set(e, EBADMSG, "read: the file is shorter than it says");
		got += (size_t)r;
	}
	return 0;
}

static int write_at(int fd, const void *p, size_t n, uint64_t off, struct err *e)
{
	if (write_all_at(fd, p, n, (off_t)off) < 0)
		return err_set(e, errno, "write: %s", strerror(errno));
	return 0;
}

/* ---- memory delta ---------------------------------------------------------- */

/* trailer: magic 16, size 8, split 8, pages 8, nonce 24 (the part the tag
 * covers: 64 bytes), tag 32, zeros to 4096 */
#define TR_SIZE 16
#define TR_SPLIT 24
#define TR_PAGES 32
#define TR_NONCE 40
#define TR_TAG 64
#define TR_COVERED 64

static size_t bitmap_len(uint64_t size)
{
	return (size_t)((size / ATREST_PAGE + 7) / 8);
}

static uint64_t bitmap_span(uint64_t size)
{
	return ((uint64_t)bitmap_len(size) + ATREST_PAGE - 1) / ATREST_PAGE * ATREST_PAGE;
}

uint64_t atrest_mem_file_size(uint64_t size)
{
	return size + bitmap_span(size) + ATREST_PAGE;
}

/* The halves meet at a whole byte of the bitmap (8 pages). */
static uint64_t split_of(uint64_t size)
{
	return (size / 2) & ~(uint64_t)(8 * ATREST_PAGE - 1);
}

static void halves_init(struct atrest_mem *m)
{
	for (int i = 0; i < 2; i++) {
		uint8_t label = (uint8_t)('0' + i);
		crypto_generichash_init(&m->h[i], m->k->mac, sizeof(m->k->mac), 32);
		crypto_generichash_update(&m->h[i], &label, 1);
	}
}

void atrest_mem_init(struct atrest_mem *m, const struct atrest_keys *k, uint64_t size,
		     const uint8_t nonce[ATREST_NONCE_BYTES])
{
	memset(m, 0, sizeof(*m));
	m->k = k;
	memcpy(m->nonce, nonce, ATREST_NONCE_BYTES);
	m->size = size;
	m->split = split_of(size);
	m->bitmap_len = bitmap_len(size);
	m->bitmap = xcalloc(m->bitmap_len ? m->bitmap_len : 1, 1);
	halves_init(m);
}

/* Hash the ciphertext of [off, off + n), page by page into its half. */
static void hash_pages(struct atrest_mem *m, const uint8_t *p, size_t n, uint64_t off)
{
	for (size_t i = 0; i < n; i += ATREST_PAGE) {
		int half = off + i >= m->split;
		crypto_generichash_update(&m->h[half], p + i, ATREST_PAGE);
	}
}

static void xor_pages(struct atrest_mem *m, uint8_t *p, size_t n, uint64_t off)
{
	crypto_stream_xchacha20_xor_ic(p, p, n, m->nonce, off / 64, m->k->mem);
}

void atrest_mem_seal(struct atrest_mem *m, uint8_t *p, size_t n, uint64_t off)
{
	xor_pages(m, p, n, off);
	hash_pages(m, p, n, off);
	for (uint64_t pg = off / ATREST_PAGE; pg < (off + n) / ATREST_PAGE; pg++) {
		m->bitmap[pg / 8] |= (uint8_t)(1u << (pg % 8));
		m->pages[pg * ATREST_PAGE >= m->split]++;
	}
}

void atrest_mem_open(struct atrest_mem *m, uint8_t *p, size_t n, uint64_t off)
{
	hash_pages(m, p, n, off);
	xor_pages(m, p, n, off);
}

bool atrest_mem_written(const struct atrest_mem *m, uint64_t page)
{
	return page < m->size / ATREST_PAGE && (m->bitmap[page / 8] >> (page % 8)) & 1;
}

/* The trailer's covered part (64 bytes) for the fields in m. */
static void trailer_fields(const struct atrest_mem *m, uint8_t *t)
{
	memset(t, 0, TR_COVERED);
	memcpy(t, MEM_MAGIC, 16);
	put64(t + TR_SIZE, m->size);
	put64(t + TR_SPLIT, m->split);
	put64(t + TR_PAGES, m->pages[0] + m->pages[1]);
	memcpy(t + TR_NONCE, m->nonce, ATREST_NONCE_BYTES);
}

static void mem_tag(struct atrest_mem *m, const uint8_t *fields, uint8_t tag[32])
{
	uint8_t h[2][32];
	crypto_generichash_state st;
	for (int i = 0; i < 2; i++)
		crypto_generichash_final(&m->h[i], h[i], 32);
	crypto_generichash_init(&st, m->k->mac, sizeof(m->k->mac), 32);
	crypto_generichash_update(&st, (const uint8_t *)"T", 1);
	crypto_generichash_update(&st, fields, TR_COVERED);
	crypto_generichash_update(&st, m->bitmap, m->bitmap_len);
	crypto_generichash_update(&st, h[0], 32);
	crypto_generichash_update(&st, h[1], 32);
	crypto_generichash_final(&st, tag, 32);
}

int atrest_mem_finish(struct atrest_mem *m, int fd, struct err *e)
{
	uint8_t *t = xcalloc(1, ATREST_PAGE);
	trailer_fields(m, t);
	mem_tag(m, t, t + TR_TAG);
	int r = write_at(fd, m->bitmap, m->bitmap_len, m->size, e);
	if (r == 0)
		r = write_at(fd, t, ATREST_PAGE, m->size + bitmap_span(m->size), e);
	free(t);
	return r;
}

int atrest_mem_load(struct atrest_mem *m, const struct atrest_keys *k, int fd,
		    uint64_t file_size, uint64_t size, struct err *e)
{
	uint8_t t[ATREST_PAGE], want[TR_COVERED];
	memset(m, 0, sizeof(*m));
	m->k = k;
	if (size % ATREST_PAGE || file_size != atrest_mem_file_size(size))
		return err_set(e, EBADMSG, "not an encrypted snapshot of %llu MB of memory",
			       (unsigned long long)(size >> 20));
	int r = read_at(fd, t, sizeof(t), file_size - ATREST_PAGE, e);
	if (r < 0)
		return r;
	m->size = size;
	m->split = split_of(size);
	m->bitmap_len = bitmap_len(size);
	m->pages[0] = get64(t + TR_PAGES); /* trailer_fields() adds the halves */
	memcpy(m->nonce, t + TR_NONCE, ATREST_NONCE_BYTES);
	trailer_fields(m, want);
	if (memcmp(t, want, TR_COVERED) != 0)
		return err_set(e, EBADMSG, "not an encrypted snapshot of %llu MB of memory",
			       (unsigned long long)(size >> 20));
	memcpy(m->stored_tag, t + TR_TAG, sizeof(m->stored_tag));
	m->bitmap = xcalloc(m->bitmap_len ? m->bitmap_len : 1, 1);
	if ((r = read_at(fd, m->bitmap, m->bitmap_len, size, e)) < 0) {
		atrest_mem_release(m);
		return r;
	}
	halves_init(m);
	return 0;
}

int atrest_mem_verify(struct atrest_mem *m, struct err *e)
{
	uint8_t fields[TR_COVERED], tag[32];
	trailer_fields(m, fields);
	mem_tag(m, fields, tag);
	if (sodium_memcmp(tag, m->stored_tag, sizeof(tag)) != 0)
		return err_set(e, EBADMSG, "the memory snapshot fails its integrity check "
			       "(damaged, or not written with this sandbox's key)");
	return 0;
}

void atrest_mem_release(struct atrest_mem *m)
{
	free(m->bitmap);
	sodium_memzero(m, sizeof(*m));
}

/* ---- device state ------------------------------------------------------------ */

/* header: magic 16, length 8, nonce 24 (the part the tag covers: 48
 * bytes), tag 32, zeros to 128 */
#define SH_LEN 16
#define SH_NONCE 24
#define SH_TAG 48
#define SH_COVERED 48

static void state_hash_init(crypto_generichash_state *st, const struct atrest_keys *k,
			    const uint8_t *header)
{
	crypto_generichash_init(st, k->mac, sizeof(k->mac), 32);
	crypto_generichash_update(st, (const uint8_t *)"S", 1);
	crypto_generichash_update(st, header, SH_COVERED);
}

int atrest_state_seal(const struct atrest_keys *k, const uint8_t nonce[ATREST_NONCE_BYTES],
		      int in, uint64_t len, int out, struct err *e)
{
	uint8_t h[ATREST_STATE_HEADER] = { 0 };
	crypto_generichash_state st;
	memcpy(h, STATE_MAGIC, 16);
	put64(h + SH_LEN, len);
	memcpy(h + SH_NONCE, nonce, ATREST_NONCE_BYTES);
	state_hash_init(&st, k, h);
	uint8_t *buf = xmalloc(CHUNK);
	int r = 0;
	for (uint64_t pos = 0; pos < len && r == 0;) {
		size_t n = (size_t)MIN((uint64_t)CHUNK, len - pos);
		if ((r = read_at(in, buf, n, pos, e)) < 0)
			break;
		crypto_stream_xchacha20_xor_ic(buf, buf, n, nonce, pos / 64, k->state);
		crypto_generichash_update(&st, buf, n);
		r = write_at(out, buf, n, ATREST_STATE_HEADER + pos, e);
		pos += n;
	}
	if (r == 0) {
		crypto_generichash_final(&st, h + SH_TAG, 32);
		r = write_at(out, h, sizeof(h), 0, e);
	}
	sodium_memzero(buf, CHUNK);
	free(buf);
	return r;
}

int atrest_state_open(const struct atrest_keys *k, int in, uint64_t file_size, int out,
		      uint8_t ret_nonce[ATREST_NONCE_BYTES], struct err *e)
{
	uint8_t h[ATREST_STATE_HEADER], tag[32];
	crypto_generichash_state st;
	if (file_size < sizeof(h))
		return err_set(e, EBADMSG, "not an encrypted device state");
	int r = read_at(in, h, sizeof(h), 0, e);
	if (r < 0)
		return r;
	uint64_t len = get64(h + SH_LEN);
	if (memcmp(h, STATE_MAGIC, 16) != 0 || len != file_size - sizeof(h))
		return err_set(e, EBADMSG, "not an encrypted device state");
	const uint8_t *nonce = h + SH_NONCE;
	state_hash_init(&st, k, h);
	uint8_t *buf = xmalloc(CHUNK);
	for (uint64_t pos = 0; pos < len && r == 0;) {
		size_t n = (size_t)MIN((uint64_t)CHUNK, len - pos);
		if ((r = read_at(in, buf, n, ATREST_STATE_HEADER + pos, e)) < 0)
			break;
		crypto_generichash_update(&st, buf, n);
		crypto_stream_xchacha20_xor_ic(buf, buf, n, nonce, pos / 64, k->state);
		r = write_at(out, buf, n, pos, e);
		pos += n;
	}
	sodium_memzero(buf, CHUNK);
	free(buf);
	if (r < 0)
		return r;
	crypto_generichash_final(&st, tag, sizeof(tag));
	if (sodium_memcmp(tag, h + SH_TAG, sizeof(tag)) != 0)
		return err_set(e, EBADMSG, "the device state fails its integrity check "
			       "(damaged, or not written with this sandbox's key)");
	memcpy(ret_nonce, nonce, ATREST_NONCE_BYTES);
	return 0;
}
