#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static const char *log_component = "podvisor";
static enum pv_log_level log_level = PV_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void pv_log_init(const char *component, enum pv_log_level level)
{
	log_component = component;
	log_level = level;
}

void pv_log_set_level(enum pv_log_level level)
{
	log_level = level;
}

int pv_log_parse_level(const char *s, enum pv_log_level *out)
{
	for (int i = 0; i <= PV_LOG_ERROR; i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum pv_log_level)i;
			return 0;
		}
	}
	return -1;
}

int pv_log_enabled(enum pv_log_level level)
{
	return level >= log_level;
}

/* A fixed-size line; output past the end is dropped, the line stays terminated. */
struct line {
	char *buf;
	size_t cap, len;
};

static void put_char(struct line *l, char c)
{
	if (l->len + 1 < l->cap)
		l->buf[l->len++] = c;
}

static void put_str(struct line *l, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_char(l, s[i]);
}

static int needs_quotes(const char *s)
{
	if (!*s)
		return 1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f)
			return 1;
	}
	return 0;
}

static void put_quoted(struct line *l, const char *s)
{
	put_char(l, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c == '"' || c == '\\') {
			put_char(l, '\\');
			put_char(l, (char)c);
		} else if (c == '\n') {
			put_str(l, "\\n", 2);
		} else if (c == '\t') {
			put_str(l, "\\t", 2);
		} else if (c == '\r') {
			put_str(l, "\\r", 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			put_str(l, esc, 4);
		} else {
			put_char(l, (char)c);
		}
	}
	put_char(l, '"');
}

void pv_log_put_value(char *out, size_t cap, size_t *pos, const char *s)
{
	struct line l = { out, cap, *pos };
	if (needs_quotes(s))
		put_quoted(&l, s);
	else
		put_str(&l, s, strlen(s));
	*pos = l.len;
}

/*
 * Format one conversion of `fields` (spec = "%...c", without '%%'); its arguments come
 * from *ap. %s values go through pv_log_put_value, so they can never break the line
 * into more records or fields.
 */
static void put_conversion(struct line *l, const char *spec, size_t n, va_list *ap)
{
	char fmt[32];
	if (n >= sizeof(fmt))
		return;
	memcpy(fmt, spec, n);
	fmt[n] = '\0';
	int star[2], nstar = 0;
	for (size_t i = 0; i < n; i++)
		if (fmt[i] == '*' && nstar < 2)
			star[nstar++] = va_arg(*ap, int);
	char conv = fmt[n - 1];
	/* length modifier: the letters between the last digit/flag and conv */
	const char *len = fmt + n - 1;
	while (len > fmt + 1 && strchr("hljztL", len[-1]))
		len--;
	size_t llen = (size_t)(fmt + n - 1 - len);
	char tmp[512];
	int w = -1;
#define FMT1(T)                                                                                     \
	do {                                                                                        \
		T v = va_arg(*ap, T);                                                               \
		w = nstar == 2 ? snprintf(tmp, sizeof(tmp), fmt, star[0], star[1], v)               \
		    : nstar == 1 ? snprintf(tmp, sizeof(tmp), fmt, star[0], v)                      \
				 : snprintf(tmp, sizeof(tmp), fmt, v);                              \
	} while (0)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	switch (conv) {
	case 'd':
	case 'i':
		if (llen == 2 && len[0] == 'l')
			FMT1(long long);
		else if (llen == 1 && len[0] == 'l')
			FMT1(long);
		else if (llen == 1 && (len[0] == 'z' || len[0] == 't'))
			FMT1(ssize_t);
		else if (llen == 1 && len[0] == 'j')
			FMT1(intmax_t);
		else
			FMT1(int);
		break;
	case 'u':
	case 'x':
	case 'X':
	case 'o':
		if (llen == 2 && len[0] == 'l')
			FMT1(unsigned long long);
		else if (llen == 1 && len[0] == 'l')
			FMT1(unsigned long);
		else if (llen == 1 && (len[0] == 'z' || len[0] == 't'))
			FMT1(size_t);
		else if (llen == 1 && len[0] == 'j')
			FMT1(uintmax_t);
		else
			FMT1(unsigned);
		break;
	case 'c':
		FMT1(int);
		break;
	case 'p':
		FMT1(void *);
		break;
	case 'e':
	case 'E':
	case 'f':
	case 'F':
	case 'g':
	case 'G':
	case 'a':
	case 'A':
		if (llen == 1 && len[0] == 'L')
			FMT1(long double);
		else
			FMT1(double);
		break;
	case 's': {
		const char *s = va_arg(*ap, const char *);
		if (!s)
			s = "";
		/* width/precision apply to the raw text; a long value is cut, not the line */
		char *raw = nstar == 2 ? pv_xasprintf(fmt, star[0], star[1], s)
			    : nstar == 1 ? pv_xasprintf(fmt, star[0], s)
					 : pv_xasprintf(fmt, s);
		pv_log_put_value(l->buf, l->cap, &l->len, raw);
		free(raw);
		return;
	}
	default:
		return;
	}
#pragma GCC diagnostic pop
#undef FMT1
	if (w > 0)
		put_str(l, tmp, (size_t)w < sizeof(tmp) ? (size_t)w : sizeof(tmp) - 1);
}

void pv_log_format_fields(char *out, size_t cap, size_t *pos, const char *fields, va_list ap)
{
	struct line l = { out, cap, *pos };
	va_list cp;
	va_copy(cp, ap);
	for (const char *p = fields; *p;) {
		if (*p != '%') {
			put_char(&l, *p == '\n' ? ' ' : *p);
			p++;
			continue;
		}
		if (p[1] == '%') {
			put_char(&l, '%');
			p += 2;
			continue;
		}
		const char *q = p + 1;
		while (*q && !strchr("diouxXcspeEfFgGaA", *q))
			q++;
		if (!*q)
			break;
		put_conversion(&l, p, (size_t)(q - p + 1), &cp);
		p = q + 1;
	}
	va_end(cp);
	*pos = l.len;
}

void pv_log(enum pv_log_level level, const char *msg, const char *fields, ...)
{
	if (!pv_log_enabled(level))
		return;
	char line[8192];
	char ts[48];
	pv_format_rfc3339nano(pv_now_realtime_ns(), ts, sizeof(ts));
	size_t pos = (size_t)snprintf(line, sizeof(line), "time=%s level=%s comp=%s msg=", ts,
				      level_names[level], log_component);
	struct line l = { line, sizeof(line) - 1, pos };
	put_quoted(&l, msg); /* always quoted, so every line reads the same */
	pos = l.len;
	if (fields && *fields) {
		line[pos++] = ' ';
		va_list ap;
		va_start(ap, fields);
		pv_log_format_fields(line, sizeof(line) - 1, &pos, fields, ap);
		va_end(ap);
	}
	line[pos++] = '\n';
	/* One write per line keeps lines whole across threads. */
	pv_write_full(2, line, pos);
}
