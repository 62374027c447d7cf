/*
 * tcpbench: a tiny TCP throughput tool, static so it runs inside pod images too.
 *   tcpbench server PORT            accept connections one after another, sink what they send
 *   tcpbench client IP PORT SECS    send for SECS seconds; print "<bits per second> bps"
 * The client stops its clock when the server has read everything (it closes after EOF).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (128 * 1024)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int server(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 4) < 0) {
		perror("tcpbench server");
		return 1;
	}
	static char buf[BUF];
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		while (read(c, buf, sizeof(buf)) > 0)
			;
		close(c);
	}
}

static int client(const char *ip, int port, double secs)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	if (s < 0 || inet_pton(AF_INET, ip, &a.sin_addr) != 1 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("tcpbench client");
		return 1;
	}
	static char buf[BUF];
	memset(buf, 'x', sizeof(buf));
	double t0 = now(), end = t0 + secs;
	unsigned long long sent = 0;
	while (now() < end) {
		ssize_t n = write(s, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			perror("tcpbench write");
			return 1;
		}
		sent += (unsigned long long)n;
	}
	shutdown(s, SHUT_WR);
	while (read(s, buf, sizeof(buf)) > 0)
		;
	double took = now() - t0;
	printf("%.0f bps %llu bytes %.3f s\n", (double)sent * 8 / took, sent, took);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(atoi(argv[2]));
	if (argc == 5 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atof(argv[4]));
	fprintf(stderr, "usage: tcpbench server PORT | tcpbench client IP PORT SECONDS\n");
	return 2;
}
