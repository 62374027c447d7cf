// spdyclient: a small client of the Kubernetes streaming protocols over SPDY/3.1, built
// on Debian's github.com/docker/spdystream (the SPDY implementation kubelet, kubectl and
// crictl share). The e2e tests drive podvisord's streaming server with it.
//
//	spdyclient exec URL [-stdin] [-tty] [-no-stdout] [-no-stderr] [-protocol P] [-resize WxH] [-resize-later WxH]
//	    stdin -> stdin stream, stdout/stderr streams -> stdout/stderr; the error stream is
//	    printed to stderr as "error-stream: ..." and the exit code is the command's
//	    (NonZeroExitCode cause), 0 on Success, 125 on any other failure.
//	spdyclient portforward URL -port P [-conns N] [-payload S]
//	    N connections to P at once, each sends S, half-closes and reads to EOF; prints
//	    one JSON object per connection: {"data": "...", "error": "..."}.
//	spdyclient portforward URL -port P -listen ADDR
//	    as kubectl port-forward: every connection accepted on ADDR is forwarded to P
//	    (prints "listening" once ready; runs until killed).
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/spdystream"
)

// bufConn hands the bytes buffered while reading the HTTP response back to the SPDY reader.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func dial(raw string, protocols []string) (*spdystream.Connection, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", err
	}
	var conn net.Conn
	if u.Scheme == "https" {
		conn, err = tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	} else {
		conn, err = net.Dial("tcp", u.Host)
	}
	if err != nil {
		return nil, "", err
	}
	req, _ := http.NewRequest("POST", raw, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "SPDY/3.1")
	for _, p := range protocols {
		req.Header.Add("X-Stream-Protocol-Version", p)
	}
	if err := req.Write(conn); err != nil {
		return nil, "", err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		return nil, "", fmt.Errorf("upgrade refused: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	sc, err := spdystream.NewConnection(&bufConn{conn, br}, false)
	if err != nil {
		return nil, "", err
	}
	go sc.Serve(spdystream.NoOpStreamHandler)
	return sc, resp.Header.Get("X-Stream-Protocol-Version"), nil
}

func stream(c *spdystream.Connection, h http.Header) *spdystream.Stream {
	s, err := c.CreateStream(h, nil, false)
	if err != nil {
		fail("create stream: %v", err)
	}
	if err := s.WaitTimeout(30 * time.Second); err != nil {
		fail("stream reply: %v", err)
	}
	return s
}

func fail(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "spdyclient: "+f+"\n", a...)
	os.Exit(126)
}

func size(s string) (int, int) {
	p := strings.SplitN(s, "x", 2)
	w, _ := strconv.Atoi(p[0])
	h, _ := strconv.Atoi(p[len(p)-1])
	return w, h
}

func execCmd(args []string) {
	fs := flag.NewFlagSet("exec", flag.ExitOnError)
	stdin := fs.Bool("stdin", false, "send our stdin")
	tty := fs.Bool("tty", false, "terminal")
	noOut := fs.Bool("no-stdout", false, "no stdout stream")
	noErr := fs.Bool("no-stderr", false, "no stderr stream")
	proto := fs.String("protocol", "v4.channel.k8s.io,v3.channel.k8s.io,v2.channel.k8s.io,channel.k8s.io", "offered")
	resize := fs.String("resize", "", "WxH sent at start")
	later := fs.String("resize-later", "", "WxH sent after 500 ms")
	openDelay := fs.Duration("open-delay", 0, "wait this long after starting stdin before opening the other streams")
	resizeDelay := fs.Duration("resize-delay", 0, "wait this long after opening the resize stream before sending -resize")
	fs.Parse(args[1:])
	c, got, err := dial(args[0], strings.Split(*proto, ","))
	if err != nil {
		fail("%v", err)
	}
	fmt.Fprintf(os.Stderr, "protocol: %s\n", got)
	errS := stream(c, http.Header{"streamType": {"error"}})
	var wg sync.WaitGroup
	if *stdin {
		in := stream(c, http.Header{"streamType": {"stdin"}})
		go func() {
			io.Copy(in, os.Stdin)
			in.Close()
		}()
		time.Sleep(*openDelay)
	}
	copyOut := func(t string, w io.Writer) {
		s := stream(c, http.Header{"streamType": {t}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(w, s)
		}()
	}
	if !*noOut {
		copyOut("stdout", os.Stdout)
	}
	if !*noErr && !*tty {
		copyOut("stderr", os.Stderr)
	}
	if *tty && got != "v2.channel.k8s.io" && got != "channel.k8s.io" {
		rs := stream(c, http.Header{"streamType": {"resize"}})
		send := func(s string) {
			w, h := size(s)
			b, _ := json.Marshal(map[string]int{"Width": w, "Height": h})
			rs.Write(b)
		}
		if *resize != "" {
			time.Sleep(*resizeDelay)
			send(*resize)
		}
		if *later != "" {
			go func() {
				time.Sleep(500 * time.Millisecond)
				send(*later)
			}()
		}
	}
	status, _ := io.ReadAll(errS)
	wg.Wait()
	c.Close()
	if len(status) > 0 {
		fmt.Fprintf(os.Stderr, "error-stream: %s\n", status)
	}
	os.Exit(exitCode(got, status))
}

func exitCode(proto string, status []byte) int {
	if proto != "v4.channel.k8s.io" {
		if len(status) == 0 {
			return 0
		}
		return 125
	}
	var st struct {
		Status  string
		Reason  string
		Details struct {
			Causes []struct{ Reason, Message string }
		}
	}
	if err := json.Unmarshal(status, &st); err != nil {
		return 125
	}
	if st.Status == "Success" {
		return 0
	}
	if st.Reason == "NonZeroExitCode" {
		for _, c := range st.Details.Causes {
			if c.Reason == "ExitCode" {
				n, _ := strconv.Atoi(c.Message)
				return n
			}
		}
	}
	return 125
}

func portForward(args []string) {
	fs := flag.NewFlagSet("portforward", flag.ExitOnError)
	port := fs.Int("port", 0, "port in the pod")
	conns := fs.Int("conns", 1, "connections at once")
	payload := fs.String("payload", "", "bytes each connection sends")
	ports := fs.String("ports", "", "comma-separated ports, one connection each (instead of -port)")
	halfClose := fs.Bool("half-close", true, "close our side of the data stream after the payload")
	listen := fs.String("listen", "", "forward connections accepted here")
	fs.Parse(args[1:])
	c, got, err := dial(args[0], []string{"portforward.k8s.io"})
	if err != nil {
		fail("%v", err)
	}
	if got != "portforward.k8s.io" {
		fail("server chose %q", got)
	}
	if *listen != "" {
		serveLocal(c, *listen, *port)
		return
	}
	var list []int
	if *ports != "" {
		for _, p := range strings.Split(*ports, ",") {
			n, _ := strconv.Atoi(p)
			list = append(list, n)
		}
	} else {
		for i := 0; i < *conns; i++ {
			list = append(list, *port)
		}
	}
	type result struct {
		Port  int    `json:"port"`
		Data  string `json:"data"`
		Error string `json:"error"`
	}
	results := make([]result, len(list))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, p := range list {
		wg.Add(1)
		go func(i, p int) {
			defer wg.Done()
			h := http.Header{"port": {strconv.Itoa(p)}, "requestID": {strconv.Itoa(i)}}
			mu.Lock()
			h.Set("streamType", "error")
			es := stream(c, h.Clone())
			es.Close() // as kubectl: nothing is written to the error stream
			h.Set("streamType", "data")
			ds := stream(c, h)
			mu.Unlock()
			var ew sync.WaitGroup
			var errText []byte
			ew.Add(1)
			go func() {
				defer ew.Done()
				errText, _ = io.ReadAll(es)
			}()
			if *payload != "" {
				ds.Write([]byte(*payload))
			}
			if *halfClose {
				ds.Close()
			}
			data, _ := io.ReadAll(ds)
			ew.Wait()
			results[i] = result{p, string(data), string(errText)}
		}(i, p)
	}
	wg.Wait()
	c.Close()
	enc := json.NewEncoder(os.Stdout)
	for _, r := range results {
		enc.Encode(r)
	}
}

// serveLocal forwards each local connection over its own pair of streams, like kubectl.
func serveLocal(c *spdystream.Connection, addr string, port int) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Println("listening")
	var mu sync.Mutex
	for id := 0; ; id++ {
		conn, err := l.Accept()
		if err != nil {
			fail("accept: %v", err)
		}
		go func(id int, conn net.Conn) {
			defer conn.Close()
			h := http.Header{"port": {strconv.Itoa(port)}, "requestID": {strconv.Itoa(id)}}
			mu.Lock()
			h.Set("streamType", "error")
			es := stream(c, h.Clone())
			es.Close()
			h.Set("streamType", "data")
			ds := stream(c, h)
			mu.Unlock()
			go func() {
				io.Copy(ds, conn)
				ds.Close()
			}()
			io.Copy(conn, ds)
			if msg, _ := io.ReadAll(es); len(msg) > 0 {
				fmt.Fprintf(os.Stderr, "%s\n", msg)
			}
		}(id, conn)
	}
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: spdyclient exec|portforward URL [flags]")
	}
	switch os.Args[1] {
	case "exec":
		execCmd(os.Args[2:])
	case "portforward":
		portForward(os.Args[2:])
	default:
		fail("unknown command %s", os.Args[1])
	}
}
