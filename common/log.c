#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

/* Quote msg so a line stays one key=value record even with spaces or quotes. */
static void put_quoted(char *out, size_t cap, size_t *pos, const char *s)
{
	if (*pos < cap)
		out[(*pos)++] = '"';
	for (; *s && *pos + 2 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[(*pos)++] = '\\';
			out[(*pos)++] = (char)c;
		} else if (c == '\n' || c < 0x20) {
			out[(*pos)++] = ' ';
		} else {
			out[(*pos)++] = (char)c;
		}
	}
	if (*pos < cap)
		out[(*pos)++] = '"';
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
	put_quoted(line, sizeof(line) - 2, &pos, msg);
	if (fields && *fields) {
		line[pos++] = ' ';
		va_list ap;
		va_start(ap, fields);
		int n = vsnprintf(line + pos, sizeof(line) - pos - 1, fields, ap);
		va_end(ap);
		if (n > 0)
			pos += (size_t)n < sizeof(line) - pos - 1 ? (size_t)n : sizeof(line) - pos - 2;
	}
	for (size_t i = 0; i < pos; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[pos++] = '\n';
	/* One write per line keeps lines whole across threads. */
	pv_write_full(2, line, pos);
}
