/* test-age.c — daemon/age.c against Debian's real `age` and `age-keygen`:
 * what we encrypt `age -d` decrypts (sizes around the 64 KiB chunk edge),
 * what `age -r` encrypts we decrypt, identity files made by `age-keygen`
 * load, tampering/truncation/wrong keys are refused without plaintext,
 * the identity file is created 0600 and a readable one is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "age.h"
#include "buf.h"
#include "helpers.h"

static char *dir;

static char *pathf(const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

static void put_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static int setup(void **state UNUSED)
{
	if (sodium_init() < 0)
		return -1;
	dir = test_tmpdir("age");
	return 0;
}

static int teardown(void **state UNUSED)
{
	test_rmtree(dir);
	free(dir);
	return 0;
}

static void test_we_encrypt_age_decrypts(void **state UNUSED)
{
	char *key = pathf("id.key");
	struct age_identity id;
	struct err e = ERR_INIT;
	assert_int_equal(age_identity_load_or_create(key, &id, &e), 0);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* loading again gives the same key */
	struct age_identity again;
	assert_int_equal(age_identity_load_or_create(key, &again, &e), 0);
	assert_memory_equal(id.public, again.public, 32);
	const size_t sizes[] = { 0, 1, 65535, 65536, 65537, 200000 };
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i];
		uint8_t *pt = malloc(n + 1);
		randombytes_buf(pt, n);
		struct buf ct = BUF_INIT, out = BUF_INIT;
		assert_int_equal(age_encrypt(id.public, pt, n, &ct, &e), 0);
		char *f = pathf("msg.age");
		put_file(f, ct.data, ct.len);
		char *argv[] = { "age", "-d", "-i", key, f, NULL };
		struct buf err = BUF_INIT;
		int rc = test_run(argv, NULL, NULL, 0, &out, &err, 30000);
		if (rc != 0)
			fail_msg("age -d failed for %zu bytes: %s", n, err.data);
		assert_int_equal(out.len, n);
		assert_memory_equal(out.data, pt, n);
		/* and we read our own */
		buf_reset(&out);
		assert_int_equal(age_decrypt(&id, ct.data, ct.len, &out, &e), 0);
		assert_int_equal(out.len, n);
		assert_memory_equal(out.data, pt, n);
		free(f);
		free(pt);
		buf_release(&ct);
		buf_release(&out);
		buf_release(&err);
	}
	free(key);
}

static void test_age_encrypts_we_decrypt(void **state UNUSED)
{
	/* a key made by age-keygen loads, and its recipient matches */
	char *key = pathf("keygen.key");
	unlink(key);
	char *kg[] = { "age-keygen", "-o", key, NULL };
	assert_int_equal(test_run(kg, NULL, NULL, 0, NULL, NULL, 30000), 0);
	struct age_identity id;
	struct err e = ERR_INIT;
	assert_int_equal(age_identity_load_or_create(key, &id, &e), 0);
	char *y[] = { "age-keygen", "-y", key, NULL };
	struct buf pub = BUF_INIT;
	assert_int_equal(test_run(y, NULL, NULL, 0, &pub, NULL, 30000), 0);
	char *ours = age_recipient_string(id.public);
	pub.data[strcspn(pub.data, "\n")] = '\0';
	assert_string_equal(ours, pub.data);
	uint8_t parsed[32];
	assert_int_equal(age_parse_recipient(ours, parsed, &e), 0);
	assert_memory_equal(parsed, id.public, 32);
	const size_t sizes[] = { 0, 5, 65536, 150001 };
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i];
		uint8_t *pt = malloc(n + 1);
		randombytes_buf(pt, n);
		char *in = pathf("plain"), *out = pathf("by-age.age");
		put_file(in, pt, n);
		unlink(out);
		char *enc[] = { "age", "-r", ours, "-o", out, in, NULL };
		assert_int_equal(test_run(enc, NULL, NULL, 0, NULL, NULL, 30000), 0);
		size_t clen;
		char *ct = host_read_file(out, &clen);
		assert_non_null(ct);
		struct buf got = BUF_INIT;
		if (age_decrypt(&id, ct, clen, &got, &e) < 0)
			fail_msg("decrypting age's output (%zu bytes): %s", n, err_str(&e));
		assert_int_equal(got.len, n);
		assert_memory_equal(got.data, pt, n);
		buf_release(&got);
		free(ct);
		free(in);
		free(out);
		free(pt);
	}
	free(ours);
	buf_release(&pub);
	free(key);
}

static void test_tampering_is_refused(void **state UNUSED)
{
	struct age_identity id, other;
	struct err e = ERR_INIT;
	char *k1 = pathf("t1.key"), *k2 = pathf("t2.key");
	assert_int_equal(age_identity_load_or_create(k1, &id, &e), 0);
	assert_int_equal(age_identity_load_or_create(k2, &other, &e), 0);
	size_t n = 70000;
	uint8_t *pt = malloc(n);
	randombytes_buf(pt, n);
	struct buf ct = BUF_INIT, out = BUF_INIT;
	assert_int_equal(age_encrypt(id.public, pt, n, &ct, &e), 0);
	/* wrong key */
	assert_int_equal(age_decrypt(&other, ct.data, ct.len, &out, &e), -EBADMSG);
	assert_int_equal(out.len, 0);
	/* a flipped byte anywhere: header, MAC, payload, last chunk */
	size_t header_end = (size_t)(strstr(ct.data, "\n---") - ct.data);
	const size_t at[] = { 5, 30, header_end + 6, header_end + 60, ct.len / 2, ct.len - 1 };
	for (size_t i = 0; i < ARRAY_SIZE(at); i++) {
		ct.data[at[i]] ^= 0x01;
		int rc = age_decrypt(&id, ct.data, ct.len, &out, &e);
		if (rc == 0)
			fail_msg("a flipped byte at %zu was accepted", at[i]);
		assert_int_equal(out.len, 0);
		ct.data[at[i]] ^= 0x01;
	}
	/* truncated at a chunk boundary, by one byte, and extended */
	size_t payload = ct.len - (n - 65536) - 16;   /* end of the first chunk */
	assert_true(age_decrypt(&id, ct.data, payload, &out, &e) < 0);
	assert_true(age_decrypt(&id, ct.data, ct.len - 1, &out, &e) < 0);
	buf_add(&ct, "x", 1);
	assert_true(age_decrypt(&id, ct.data, ct.len, &out, &e) < 0);
	assert_int_equal(out.len, 0);
	assert_true(age_decrypt(&id, "not age", 7, &out, &e) < 0);
	free(pt);
	free(k1);
	free(k2);
	buf_release(&ct);
	buf_release(&out);
}

static void test_identity_files(void **state UNUSED)
{
	struct age_identity id;
	struct err e = ERR_INIT;
	char *k = pathf("open.key");
	unlink(k);
	assert_int_equal(age_identity_load_or_create(k, &id, &e), 0);
	chmod(k, 0644);
	assert_int_equal(age_identity_load_or_create(k, &id, &e), -EPERM);
	assert_non_null(strstr(err_str(&e), "chmod 600"));
	char *bad = pathf("bad.key");
	put_file(bad, "# nothing here\nAGE-SECRET-KEY-1QQQQ\n", 36);
	chmod(bad, 0600);
	assert_int_equal(age_identity_load_or_create(bad, &id, &e), -EINVAL);
	assert_non_null(strstr(err_str(&e), "malformed"));
	assert_true(age_parse_recipient("age1notakey", id.public, &e) < 0);
	free(k);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_we_encrypt_age_decrypts),
		cmocka_unit_test(test_age_encrypts_we_decrypt),
		cmocka_unit_test(test_tampering_is_refused),
		cmocka_unit_test(test_identity_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
