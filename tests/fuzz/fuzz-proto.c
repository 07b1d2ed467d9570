/* fuzz-proto.c — libFuzzer target for the agent protocol decoder and every
 * message layout (shared/proto.c, shared/wire.c).
 *
 * The input is cut into chunks of varying size and fed to the incremental
 * decoder, as a socket would deliver it. Every frame is decoded with its
 * type's layout. Oracle: decoding is strict, so a body that decodes must
 * re-encode to exactly the same bytes; anything else (or a crash, a leak,
 * an out-of-bounds read) is a bug. Build and run: `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static void check_frame(const struct proto_frame *f)
{
	_Alignas(16) unsigned char msg[4096];
	struct buf again = BUF_INIT;

	if (f->type == PROTO_DATA) {
		struct proto_data d;
		if (proto_decode_data(f, &d, NULL) == 0) {
			proto_put_data(&again, f->stream, d.channel, d.data, d.len);
			if (again.len != PROTO_HDR_SIZE + f->len ||
			    memcmp(again.data + PROTO_HDR_SIZE, f->payload, f->len) != 0)
				abort();
		}
		buf_release(&again);
		return;
	}
	if (proto_decode(f, msg, NULL) != 0)
		return;
	if (proto_put_msg(&again, f->stream, f->type, f->flags, msg) != 0)
		abort(); /* it came in one frame, it must go out in one */
	if (again.len != PROTO_HDR_SIZE + f->len ||
	    memcmp(again.data + PROTO_HDR_SIZE, f->payload, f->len) != 0)
		abort(); /* not canonical: the decoder accepted something loose */
	proto_msg_release(f->type, msg);
	buf_release(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_decoder d;
	struct proto_frame f;
	size_t off = 0;
	unsigned step = size ? data[0] % 13 + 1 : 1;

	proto_decoder_init(&d);
	while (off < size) {
		size_t n = step * 97 % 4096 + 1;
		if (n > size - off)
			n = size - off;
		proto_decoder_feed(&d, data + off, n);
		off += n;
		step++;
		int r;
		while ((r = proto_decoder_next(&d, &f, NULL)) == 1)
			check_frame(&f);
		if (r < 0)
			break; /* corrupt stream: the connection would close */
	}
	if (proto_decoder_pending(&d) > PROTO_MAX_FRAME + 4096)
		abort(); /* never buffer more than a frame plus one chunk */
	proto_decoder_release(&d);
	return 0;
}
