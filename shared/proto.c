/* proto.c — frame decoder and the message table of the agent protocol
 * (see proto.h and docs/protocol.md).
 *
 * Each message type has a layout: the ordered list of its fields. One
 * generic walker encodes, decodes and releases every message, so adding a
 * message is one struct in proto.h and one layout + table row here. Sits
 * under lohar and the host agent client; touches only memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "wire.h"

/* ---- layouts ----------------------------------------------------------- */

enum pk { PK_U8, PK_U16, PK_U32, PK_U64, PK_I32, PK_I64, PK_STR, PK_STRV, PK_BLOB, PK_LIST };

struct proto_layout;

struct proto_field {
	enum pk kind;
	size_t off;                      /* offset of the member */
	size_t count_off;                /* PK_LIST: offset of the size_t count */
	const struct proto_layout *sub;  /* PK_LIST: element layout */
};

struct proto_layout {
	size_t size;                     /* sizeof the struct */
	const struct proto_field *fields;
	size_t nfields;
};

/* Entries in one list: each element takes at least one byte on the wire,
 * and the frame is at most 1 MiB, so this only bounds the allocation. */
#define PROTO_LIST_MAX 65536

#define F(T, kind, member) { kind, offsetof(T, member), 0, NULL }
#define FL(T, member, count, layout) { PK_LIST, offsetof(T, member), offsetof(T, count), &layout }
#define LAYOUT(name, T, ...)                                                     \
	static const struct proto_field name##_fields[] = { __VA_ARGS__ };        \
	static const struct proto_layout name = { sizeof(T), name##_fields,        \
						  ARRAY_SIZE(name##_fields) }
#define EMPTY_LAYOUT(name) static const struct proto_layout name = { 0, NULL, 0 }

EMPTY_LAYOUT(L_empty);
LAYOUT(L_hello, struct proto_hello,
       F(struct proto_hello, PK_U32, version),
       F(struct proto_hello, PK_STR, token),
       F(struct proto_hello, PK_STR, client));
LAYOUT(L_hello_ok, struct proto_hello_ok,
       F(struct proto_hello_ok, PK_U32, version),
       F(struct proto_hello_ok, PK_STR, agent_version),
       F(struct proto_hello_ok, PK_U32, max_frame),
       F(struct proto_hello_ok, PK_U32, window),
       F(struct proto_hello_ok, PK_U32, max_streams),
       F(struct proto_hello_ok, PK_STR, hostname),
       F(struct proto_hello_ok, PK_U8, configured));
LAYOUT(L_ping, struct proto_ping,
       F(struct proto_ping, PK_U64, nonce));
LAYOUT(L_error, struct proto_error,
       F(struct proto_error, PK_I32, code),
       F(struct proto_error, PK_STR, message));
LAYOUT(L_eof, struct proto_eof,
       F(struct proto_eof, PK_U8, channel));
LAYOUT(L_window, struct proto_window,
       F(struct proto_window, PK_U32, increment));
LAYOUT(L_ok, struct proto_ok,
       F(struct proto_ok, PK_U64, bytes),
       F(struct proto_ok, PK_U32, flags));
LAYOUT(L_cfg_file, struct proto_cfg_file,
       F(struct proto_cfg_file, PK_STR, path),
       F(struct proto_cfg_file, PK_U32, mode),
       F(struct proto_cfg_file, PK_U32, uid),
       F(struct proto_cfg_file, PK_U32, gid),
       F(struct proto_cfg_file, PK_BLOB, content));
LAYOUT(L_configure, struct proto_configure,
       F(struct proto_configure, PK_U32, what),
       F(struct proto_configure, PK_STR, hostname),
       F(struct proto_configure, PK_STR, token),
       F(struct proto_configure, PK_STRV, env),
       F(struct proto_configure, PK_STRV, secrets),
       FL(struct proto_configure, files, nfiles, L_cfg_file),
       F(struct proto_configure, PK_STR, init),
       F(struct proto_configure, PK_STR, net_ifname),
       F(struct proto_configure, PK_STR, net_address),
       F(struct proto_configure, PK_STR, net_gateway),
       F(struct proto_configure, PK_STRV, net_dns),
       F(struct proto_configure, PK_U32, net_mtu),
       F(struct proto_configure, PK_U64, clock_ns),
       F(struct proto_configure, PK_BLOB, rng_seed),
       F(struct proto_configure, PK_STR, net_mac));
LAYOUT(L_activity_info, struct proto_activity_info,
       F(struct proto_activity_info, PK_U64, idle_ms),
       F(struct proto_activity_info, PK_U32, execs),
       F(struct proto_activity_info, PK_U32, sessions),
       F(struct proto_activity_info, PK_U32, attached),
       F(struct proto_activity_info, PK_U32, forwards),
       F(struct proto_activity_info, PK_U32, streams),
       F(struct proto_activity_info, PK_U64, uptime_ms));
LAYOUT(L_load_info, struct proto_load_info,
       F(struct proto_load_info, PK_U64, cpu_ms),
       F(struct proto_load_info, PK_U32, tcp_out),
       F(struct proto_load_info, PK_U32, holds),
       F(struct proto_load_info, PK_U64, hold_ms),
       F(struct proto_load_info, PK_U32, forwards));
LAYOUT(L_exec, struct proto_exec,
       F(struct proto_exec, PK_STRV, argv),
       F(struct proto_exec, PK_STRV, env),
       F(struct proto_exec, PK_STR, cwd),
       F(struct proto_exec, PK_U32, flags),
       F(struct proto_exec, PK_U32, timeout_ms),
       F(struct proto_exec, PK_STR, output_path));
LAYOUT(L_exec_started, struct proto_exec_started,
       F(struct proto_exec_started, PK_U32, pid),
       F(struct proto_exec_started, PK_STR, output_path));
LAYOUT(L_exit, struct proto_exit,
       F(struct proto_exit, PK_I32, exit_code),
       F(struct proto_exit, PK_I32, signal),
       F(struct proto_exit, PK_U32, flags));
LAYOUT(L_session_open, struct proto_session_open,
       F(struct proto_session_open, PK_STR, id),
       F(struct proto_session_open, PK_STRV, argv),
       F(struct proto_session_open, PK_STRV, env),
       F(struct proto_session_open, PK_STR, cwd),
       F(struct proto_session_open, PK_U16, rows),
       F(struct proto_session_open, PK_U16, cols),
       F(struct proto_session_open, PK_U32, flags),
       F(struct proto_session_open, PK_U32, idle_timeout_sec));
LAYOUT(L_session_attach, struct proto_session_attach,
       F(struct proto_session_attach, PK_STR, id),
       F(struct proto_session_attach, PK_U16, rows),
       F(struct proto_session_attach, PK_U16, cols));
LAYOUT(L_resize, struct proto_resize,
       F(struct proto_resize, PK_U16, rows),
       F(struct proto_resize, PK_U16, cols));
LAYOUT(L_session_ref, struct proto_session_ref,
       F(struct proto_session_ref, PK_STR, id),
       F(struct proto_session_ref, PK_U32, signal));
LAYOUT(L_session, struct proto_session,
       F(struct proto_session, PK_STR, id),
       F(struct proto_session, PK_STRV, argv),
       F(struct proto_session, PK_STR, tty),
       F(struct proto_session, PK_U32, pid),
       F(struct proto_session, PK_U8, running),
       F(struct proto_session, PK_U8, attached),
       F(struct proto_session, PK_I32, exit_code),
       F(struct proto_session, PK_I64, created),
       F(struct proto_session, PK_U64, output_bytes),
       F(struct proto_session, PK_U16, rows),
       F(struct proto_session, PK_U16, cols));
LAYOUT(L_session_list, struct proto_session_list,
       FL(struct proto_session_list, sessions, count, L_session));
LAYOUT(L_file_read, struct proto_file_read,
       F(struct proto_file_read, PK_STR, path),
       F(struct proto_file_read, PK_U64, offset),
       F(struct proto_file_read, PK_U64, limit),
       F(struct proto_file_read, PK_U64, max_bytes),
       F(struct proto_file_read, PK_U32, flags));
LAYOUT(L_file_meta, struct proto_file_meta,
       F(struct proto_file_meta, PK_U8, type),
       F(struct proto_file_meta, PK_U32, mode),
       F(struct proto_file_meta, PK_U64, size),
       F(struct proto_file_meta, PK_I64, mtime),
       F(struct proto_file_meta, PK_U32, uid),
       F(struct proto_file_meta, PK_U32, gid),
       F(struct proto_file_meta, PK_STR, link_target));
LAYOUT(L_file_write, struct proto_file_write,
       F(struct proto_file_write, PK_STR, path),
       F(struct proto_file_write, PK_U32, mode),
       F(struct proto_file_write, PK_U64, size),
       F(struct proto_file_write, PK_U32, flags));
LAYOUT(L_path, struct proto_path,
       F(struct proto_path, PK_STR, path),
       F(struct proto_path, PK_U32, flags));
LAYOUT(L_file_ls, struct proto_file_ls,
       F(struct proto_file_ls, PK_STR, path),
       F(struct proto_file_ls, PK_U32, max_entries),
       F(struct proto_file_ls, PK_U32, flags));
LAYOUT(L_dirent, struct proto_dirent,
       F(struct proto_dirent, PK_STR, name),
       F(struct proto_dirent, PK_U8, type),
       F(struct proto_dirent, PK_U32, mode),
       F(struct proto_dirent, PK_U64, size),
       F(struct proto_dirent, PK_I64, mtime));
LAYOUT(L_ls_result, struct proto_ls_result,
       FL(struct proto_ls_result, entries, count, L_dirent),
       F(struct proto_ls_result, PK_U32, total),
       F(struct proto_ls_result, PK_U8, truncated));
LAYOUT(L_forward, struct proto_forward,
       F(struct proto_forward, PK_U16, port));
LAYOUT(L_port, struct proto_port,
       F(struct proto_port, PK_U16, port),
       F(struct proto_port, PK_U8, flags));
LAYOUT(L_ports_result, struct proto_ports_result,
       FL(struct proto_ports_result, ports, count, L_port));

/* The message table: every type, its name and its body layout. DATA has
 * no layout (it is decoded by proto_decode_data). */
static const struct proto_msg {
	uint8_t type;
	const char *name;
	const struct proto_layout *layout;
} proto_msgs[] = {
	{ PROTO_HELLO, "HELLO", &L_hello },
	{ PROTO_HELLO_OK, "HELLO_OK", &L_hello_ok },
	{ PROTO_PING, "PING", &L_ping },
	{ PROTO_PONG, "PONG", &L_ping },
	{ PROTO_ERROR, "ERROR", &L_error },
	{ PROTO_DATA, "DATA", NULL },
	{ PROTO_EOF, "EOF", &L_eof },
	{ PROTO_WINDOW_UPDATE, "WINDOW_UPDATE", &L_window },
	{ PROTO_CLOSE, "CLOSE", &L_empty },
	{ PROTO_OK, "OK", &L_ok },
	{ PROTO_CONFIGURE, "CONFIGURE", &L_configure },
	{ PROTO_ACTIVITY, "ACTIVITY", &L_empty },
	{ PROTO_ACTIVITY_INFO, "ACTIVITY_INFO", &L_activity_info },
	{ PROTO_SYNC, "SYNC", &L_empty },
	{ PROTO_LOAD, "LOAD", &L_empty },
	{ PROTO_LOAD_INFO, "LOAD_INFO", &L_load_info },
	{ PROTO_EXEC, "EXEC", &L_exec },
	{ PROTO_EXEC_STARTED, "EXEC_STARTED", &L_exec_started },
	{ PROTO_EXIT, "EXIT", &L_exit },
	{ PROTO_SESSION_OPEN, "SESSION_OPEN", &L_session_open },
	{ PROTO_SESSION_ATTACH, "SESSION_ATTACH", &L_session_attach },
	{ PROTO_SESSION, "SESSION", &L_session },
	{ PROTO_RESIZE, "RESIZE", &L_resize },
	{ PROTO_SESSION_LIST, "SESSION_LIST", &L_empty },
	{ PROTO_SESSION_INFO, "SESSION_INFO", &L_session_ref },
	{ PROTO_SESSION_LIST_RESULT, "SESSION_LIST_RESULT", &L_session_list },
	{ PROTO_SESSION_KILL, "SESSION_KILL", &L_session_ref },
	{ PROTO_FILE_READ, "FILE_READ", &L_file_read },
	{ PROTO_FILE_WRITE, "FILE_WRITE", &L_file_write },
	{ PROTO_FILE_STAT, "FILE_STAT", &L_path },
	{ PROTO_FILE_META, "FILE_META", &L_file_meta },
	{ PROTO_FILE_LS, "FILE_LS", &L_file_ls },
	{ PROTO_LS_RESULT, "LS_RESULT", &L_ls_result },
	{ PROTO_FORWARD, "FORWARD", &L_forward },
	{ PROTO_PORTS, "PORTS", &L_empty },
	{ PROTO_PORTS_RESULT, "PORTS_RESULT", &L_ports_result },
};

static const struct proto_msg *msg_find(uint8_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(proto_msgs); i++)
		if (proto_msgs[i].type == type)
			return &proto_msgs[i];
	return NULL;
}

const char *proto_type_name(uint8_t type)
{
	const struct proto_msg *m = msg_find(type);
	return m ? m->name : NULL;
}

bool proto_type_known(uint8_t type)
{
	return msg_find(type) != NULL;
}

/* ---- generic walker ---------------------------------------------------- */

typedef char **strv_t;
#define AT(base, off, T) ((T *)((char *)(base) + (off)))
#define CAT(base, off, T) ((const T *)((const char *)(base) + (off)))

static void layout_encode(struct buf *b, const struct proto_layout *l, const void *m)
{
	for (size_t i = 0; i < l->nfields; i++) {
		const struct proto_field *f = &l->fields[i];
		switch (f->kind) {
		case PK_U8: wire_put_u8(b, *CAT(m, f->off, uint8_t)); break;
		case PK_U16: wire_put_u16(b, *CAT(m, f->off, uint16_t)); break;
		case PK_U32: wire_put_u32(b, *CAT(m, f->off, uint32_t)); break;
		case PK_I32: wire_put_u32(b, (uint32_t)*CAT(m, f->off, int32_t)); break;
		case PK_U64: wire_put_u64(b, *CAT(m, f->off, uint64_t)); break;
		case PK_I64: wire_put_u64(b, (uint64_t)*CAT(m, f->off, int64_t)); break;
		case PK_STR: wire_put_str(b, *CAT(m, f->off, char *)); break;
		case PK_STRV: wire_put_strv(b, *CAT(m, f->off, strv_t)); break;
		case PK_BLOB: {
			const struct proto_blob *bl = CAT(m, f->off, struct proto_blob);
			wire_put_bytes(b, bl->data, bl->len);
			break;
		}
		case PK_LIST: {
			const char *items = *CAT(m, f->off, char *);
			size_t n = *CAT(m, f->count_off, size_t);
			wire_put_u32(b, (uint32_t)n);
			for (size_t k = 0; k < n; k++)
				layout_encode(b, f->sub, items + k * f->sub->size);
			break;
		}
		}
	}
}

static void layout_release(const struct proto_layout *l, void *m)
{
	for (size_t i = 0; i < l->nfields; i++) {
		const struct proto_field *f = &l->fields[i];
		switch (f->kind) {
		case PK_STR:
			free(*AT(m, f->off, char *));
			*AT(m, f->off, char *) = NULL;
			break;
		case PK_STRV:
			strv_free(*AT(m, f->off, char **));
			*AT(m, f->off, char **) = NULL;
			break;
		case PK_BLOB: {
			struct proto_blob *bl = AT(m, f->off, struct proto_blob);
			free(bl->data);
			bl->data = NULL;
			bl->len = 0;
			break;
		}
		case PK_LIST: {
			char *items = *AT(m, f->off, char *);
			size_t n = *AT(m, f->count_off, size_t);
			for (size_t k = 0; k < n; k++)
				layout_release(f->sub, items + k * f->sub->size);
			free(items);
			*AT(m, f->off, char *) = NULL;
			*AT(m, f->count_off, size_t) = 0;
			break;
		}
		default:
			break;
		}
	}
}

/* Decode into zeroed *m. On failure rd->err is set; whatever was
 * allocated is still reachable from m, so layout_release() cleans up. */
static void layout_decode(struct wire_rd *rd, const struct proto_layout *l, void *m)
{
	for (size_t i = 0; i < l->nfields && !rd->err; i++) {
		const struct proto_field *f = &l->fields[i];
		switch (f->kind) {
		case PK_U8: *AT(m, f->off, uint8_t) = wire_get_u8(rd); break;
		case PK_U16: *AT(m, f->off, uint16_t) = wire_get_u16(rd); break;
		case PK_U32: *AT(m, f->off, uint32_t) = wire_get_u32(rd); break;
		case PK_I32: *AT(m, f->off, int32_t) = (int32_t)wire_get_u32(rd); break;
		case PK_U64: *AT(m, f->off, uint64_t) = wire_get_u64(rd); break;
		case PK_I64: *AT(m, f->off, int64_t) = (int64_t)wire_get_u64(rd); break;
		case PK_STR: *AT(m, f->off, char *) = wire_get_str(rd); break;
		case PK_STRV: *AT(m, f->off, char **) = wire_get_strv(rd); break;
		case PK_BLOB: {
			struct proto_blob *bl = AT(m, f->off, struct proto_blob);
			bl->data = wire_get_bytes(rd, &bl->len);
			break;
		}
		case PK_LIST: {
			uint32_t n = wire_get_u32(rd);
			if (rd->err)
				break;
			if (n > PROTO_LIST_MAX || n > rd->left) {
				rd->err = -EPROTO;
				break;
			}
			char *items = xcalloc(n ? n : 1, f->sub->size);
			*AT(m, f->off, char *) = items;
			for (uint32_t k = 0; k < n && !rd->err; k++) {
				layout_decode(rd, f->sub, items + k * f->sub->size);
				/* count what exists so release frees exactly that */
				*AT(m, f->count_off, size_t) = k + 1;
			}
			break;
		}
		}
	}
}

/* ---- frames ------------------------------------------------------------ */

static void put_header(uint8_t *h, uint32_t len, uint8_t type, uint16_t flags,
		       uint32_t stream)
{
	wire_set_le32(h, len);
	h[4] = PROTO_MAGIC;
	h[5] = type;
	h[6] = (uint8_t)flags;
	h[7] = (uint8_t)(flags >> 8);
	wire_set_le32(h + 8, stream);
}

void proto_put_frame(struct buf *out, uint32_t stream, uint8_t type,
		     uint16_t flags, const void *payload, size_t len)
{
	uint8_t h[PROTO_HDR_SIZE];
	if (len > PROTO_MAX_PAYLOAD)
		abort(); /* programming error: callers chunk their data */
	put_header(h, (uint32_t)len, type, flags, stream);
	buf_add(out, h, sizeof(h));
	buf_add(out, payload, len);
}

int proto_put_msg(struct buf *out, uint32_t stream, uint8_t type,
		  uint16_t flags, const void *msg)
{
	const struct proto_msg *m = msg_find(type);
	size_t start = out->len;
	uint8_t h[PROTO_HDR_SIZE] = { 0 };

	if (!m || !m->layout)
		abort(); /* programming error */
	buf_add(out, h, sizeof(h));
	if (m->layout->nfields) {
		if (!msg)
			abort();
		layout_encode(out, m->layout, msg);
	}
	size_t len = out->len - start - PROTO_HDR_SIZE;
	if (len > PROTO_MAX_PAYLOAD) {
		buf_setlen(out, start);
		return -EMSGSIZE;
	}
	put_header((uint8_t *)out->data + start, (uint32_t)len, type, flags, stream);
	return 0;
}

void proto_data_header(uint8_t *h, uint32_t stream, uint8_t channel, size_t n)
{
	if (n > PROTO_DATA_CHUNK)
		abort(); /* programming error */
	put_header(h, (uint32_t)n + 1, PROTO_DATA, 0, stream);
	h[PROTO_HDR_SIZE] = channel;
}

void proto_put_data(struct buf *out, uint32_t stream, uint8_t channel,
		    const void *p, size_t n)
{
	uint8_t h[PROTO_DATA_HDR];
	proto_data_header(h, stream, channel, n);
	buf_add(out, h, sizeof(h));
	buf_add(out, p, n);
}

void proto_put_error(struct buf *out, uint32_t stream, int code,
		     const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct proto_error pe = { .code = code < 0 ? -code : code, .message = msg };
	proto_put_msg(out, stream, PROTO_ERROR, PROTO_F_END, &pe);
}

int proto_decode(const struct proto_frame *f, void *ret_msg, struct err *e)
{
	const struct proto_msg *m = msg_find(f->type);
	struct wire_rd rd;

	if (!m || !m->layout)
		return err_set(e, EPROTO, "unknown message type %u", f->type);
	if (m->layout->size)
		memset(ret_msg, 0, m->layout->size);
	wire_rd_init(&rd, f->payload, f->len);
	layout_decode(&rd, m->layout, ret_msg);
	if (!rd.err && rd.left)
		rd.err = -EPROTO;
	if (rd.err) {
		if (m->layout->size)
			layout_release(m->layout, ret_msg);
		return err_set(e, EPROTO, "malformed %s message (%u bytes)", m->name, f->len);
	}
	return 0;
}

void proto_msg_release(uint8_t type, void *msg)
{
	const struct proto_msg *m = msg_find(type);
	if (m && m->layout && msg)
		layout_release(m->layout, msg);
}

int proto_decode_data(const struct proto_frame *f, struct proto_data *ret,
		      struct err *e)
{
	if (f->type != PROTO_DATA || f->len < 1 || f->len - 1 > PROTO_DATA_CHUNK)
		return err_set(e, EPROTO, "malformed DATA message (%u bytes)", f->len);
	ret->channel = f->payload[0];
	ret->data = f->payload + 1;
	ret->len = f->len - 1;
	return 0;
}

/* ---- decoder ----------------------------------------------------------- */

void proto_decoder_init(struct proto_decoder *d)
{
	buf_init(&d->in);
	d->off = 0;
	d->err = 0;
}

void proto_decoder_release(struct proto_decoder *d)
{
	buf_release(&d->in);
	d->off = 0;
}

void proto_decoder_feed(struct proto_decoder *d, const void *p, size_t n)
{
	if (d->err || n == 0)
		return;
	if (d->off) { /* drop frames already handed out */
		buf_consume(&d->in, d->off);
		d->off = 0;
	}
	buf_add(&d->in, p, n);
}

void proto_decoder_resync(struct proto_decoder *d)
{
	d->err = 0;
	if (d->off < d->in.len)
		d->off++;
}

size_t proto_decoder_pending(const struct proto_decoder *d)
{
	return d->in.len - d->off;
}

int proto_decoder_next(struct proto_decoder *d, struct proto_frame *ret,
		       struct err *e)
{
	const uint8_t *h;
	size_t avail;
	uint32_t len;
	uint16_t flags;

	if (d->err)
		return err_set(e, -d->err, "connection stream is corrupt");
	avail = d->in.len - d->off;
	if (avail < PROTO_HDR_SIZE) {
		/* Check the magic as soon as it is here, so garbage fails fast. */
		if (avail > 4 && (uint8_t)d->in.data[d->off + 4] != PROTO_MAGIC)
			goto bad_magic;
		return 0;
	}
	h = (const uint8_t *)d->in.data + d->off;
	len = wire_le32(h);
	if (h[4] != PROTO_MAGIC)
		goto bad_magic;
	flags = (uint16_t)(h[6] | h[7] << 8);
	if (flags & ~PROTO_F_KNOWN) {
		d->err = -EPROTO;
		return err_set(e, EPROTO, "unknown frame flags 0x%x", flags);
	}
	if (len > PROTO_MAX_PAYLOAD) {
		d->err = -EMSGSIZE;
		return err_set(e, EMSGSIZE, "frame of %llu bytes exceeds the %u byte limit",
			       (unsigned long long)len + PROTO_HDR_SIZE, PROTO_MAX_FRAME);
	}
	if (avail < PROTO_HDR_SIZE + (size_t)len)
		return 0;
	ret->len = len;
	ret->type = h[5];
	ret->flags = flags;
	ret->stream = wire_le32(h + 8);
	ret->payload = h + PROTO_HDR_SIZE;
	d->off += PROTO_HDR_SIZE + len;
	return 1;

bad_magic:
	d->err = -EPROTO;
	return err_set(e, EPROTO, "bad frame magic (not a bhatti agent stream?)");
}
