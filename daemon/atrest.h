/* atrest — a cold snapshot encrypted at rest: the formats of a sandbox's
 * memory delta (`mem`) and device state (`state`) when they are written
 * with a key, and the cipher and MAC over them (libsodium: XChaCha20 and
 * keyed BLAKE2b-256). docs/architecture.md ("Cold snapshots at rest") says
 * what this protects and what it does not.
 *
 * Sits between fileops.c (which reads and writes the files, on the file
 * worker) and libsodium; touches no files itself except through the fds
 * it is given.
 *
 * Keys: the sandbox's 32-byte key K (made at create, kept wrapped in its
 * vm.json) is never used directly; crypto_kdf gives three subkeys, one to
 * encrypt memory pages, one for the device state, one for the MACs.
 * Every snapshot (every stop) draws a new random 24-byte nonce N, shared
 * by its two files and recorded in both.
 *
 * Memory delta, a sparse file of M + B + 4096 bytes (M: the guest's
 * memory, B: the bitmap rounded up to 4 KiB):
 *
 *   [0, M)        the pages that differ from the base (the template's
 *                 memory, or zeros), each at its own offset, encrypted:
 *                 byte o is XORed with byte o of the XChaCha20 keystream
 *                 of (K_mem, N) (crypto_stream_xchacha20_xor_ic, block
 *                 counter o / 64). A page not written is a hole, as in a
 *                 plaintext delta: only the pages written are paid for.
 *   [M, M + B)    a bitmap, one bit per page: written or not (holes do not
 *                 depend on how a filesystem reports them)
 *   last 4096     the trailer: magic "bhatti-mem v1\n", M, the split S of
 *                 the two halves (below), the pages written, N, the tag
 *
 *   tag = BLAKE2b-256(K_mac; "T" ‖ magic ‖ M ‖ S ‖ pages ‖ N ‖ bitmap ‖ h0 ‖ h1)
 *   h0  = BLAKE2b-256(K_mac; "0" ‖ ciphertext of the written pages < S, in order)
 *   h1  = the same with "1" for the pages ≥ S
 *
 * (two halves because a save compares and writes them on two threads).
 *
 * Device state: a 128-byte header (magic "bhatti-state v1\n", the length
 * L, N, tag) then L bytes XORed with the keystream of (K_state, N) from
 * block 0; tag = BLAKE2b-256(K_mac; "S" ‖ magic ‖ L ‖ N ‖ ciphertext).
 *
 * A loader checks the trailer or header, decrypts while it hashes, and
 * answers -EBADMSG when a tag or the shared nonce does not match; what it
 * wrote is then not to be used. Integers are little-endian.
 */
#ifndef BHATTI_ATREST_H
#define BHATTI_ATREST_H

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define ATREST_KEY_BYTES 32
#define ATREST_NONCE_BYTES 24
#define ATREST_PAGE 4096u

struct atrest_keys {
	uint8_t mem[32], state[32], mac[32];
};

/* The three subkeys of a sandbox key; wipe them with atrest_keys_wipe(). */
void atrest_keys_derive(struct atrest_keys *k, const uint8_t key[ATREST_KEY_BYTES]);
void atrest_keys_wipe(struct atrest_keys *k);
void atrest_nonce_new(uint8_t nonce[ATREST_NONCE_BYTES]);

/* ---- memory delta ---- */

/* One save or one load of an encrypted memory delta. During a save the
 * two halves [0, split) and [split, size) may be sealed on two threads at
 * once (each half has its own hash and its own bytes of the bitmap). */
struct atrest_mem {
	const struct atrest_keys *k;
	uint8_t nonce[ATREST_NONCE_BYTES];
	uint64_t size;           /* the guest's memory (a multiple of 4 KiB) */
	uint64_t split;
	uint64_t pages[2];       /* written, per half */
	uint8_t *bitmap;
	size_t bitmap_len;
	crypto_generichash_state h[2];
	uint8_t stored_tag[32];  /* a load: the trailer's */
};

/* The size of an encrypted delta of a size-byte memory. */
uint64_t atrest_mem_file_size(uint64_t size);
/* Begin a save. */
void atrest_mem_init(struct atrest_mem *m, const struct atrest_keys *k, uint64_t size,
		     const uint8_t nonce[ATREST_NONCE_BYTES]);
/* Encrypt the pages [off, off + n) in place (whole pages, within one
 * half), hash them and mark them written. */
void atrest_mem_seal(struct atrest_mem *m, uint8_t *p, size_t n, uint64_t off);
/* End a save: write the bitmap and the trailer to fd (sized by them). */
int atrest_mem_finish(struct atrest_mem *m, int fd, struct err *e);

/* Begin a load of fd (file_size bytes), the delta of a size-byte memory:
 * -EBADMSG when it is no encrypted delta of that size. */
int atrest_mem_load(struct atrest_mem *m, const struct atrest_keys *k, int fd,
		    uint64_t file_size, uint64_t size, struct err *e);
bool atrest_mem_written(const struct atrest_mem *m, uint64_t page);
/* Hash the ciphertext of the pages [off, off + n) and decrypt it in place. */
void atrest_mem_open(struct atrest_mem *m, uint8_t *p, size_t n, uint64_t off);
/* After every written page was opened, in order: 0, or -EBADMSG. */
int atrest_mem_verify(struct atrest_mem *m, struct err *e);

void atrest_mem_release(struct atrest_mem *m);

/* ---- device state ---- */

#define ATREST_STATE_HEADER 128u

/* Encrypt the len bytes of in (from offset 0) to out (from offset 0). */
int atrest_state_seal(const struct atrest_keys *k, const uint8_t nonce[ATREST_NONCE_BYTES],
		      int in, uint64_t len, int out, struct err *e);
/* Decrypt in (file_size bytes) to out from offset 0 (pwrite: out's file
 * offset is left alone); the nonce it was sealed with in ret_nonce.
 * -EBADMSG when it is no encrypted state or its tag does not match. */
int atrest_state_open(const struct atrest_keys *k, int in, uint64_t file_size, int out,
		      uint8_t ret_nonce[ATREST_NONCE_BYTES], struct err *e);

#endif
