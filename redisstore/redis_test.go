package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server process started for one test.
type redisServer struct {
	Addr string

	cmd      *exec.Cmd
	killOnce sync.Once
	exited   chan struct{}
}

// startRedis starts a redis-server on a free loopback port, with a temp
// dir and no persistence, and stops it when the test ends. It skips the
// test when redis-server is not installed.
func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("redis-server not installed: apt-get install -y redis-server")
	}
	dir := tb.TempDir()
	var lastErr error
	for range 5 { // the free port may be taken before redis binds it
		port, err := freePort()
		if err != nil {
			tb.Fatalf("free port: %v", err)
		}
		r, err := launchRedis(bin, port, dir)
		if err == nil {
			tb.Cleanup(r.Kill)
			return r
		}
		lastErr = err
	}
	tb.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func launchRedis(bin string, port int, dir string) (*redisServer, error) {
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &redisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.exited) }()

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond, DialerRetries: 1})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-r.exited:
			return nil, fmt.Errorf("redis-server exited: %s", out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		if time.Now().After(deadline) {
			r.Kill()
			return nil, fmt.Errorf("redis-server on %s did not answer PING: %v", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server (SIGKILL) and waits for it to exit. It is safe to
// call more than once.
func (r *redisServer) Kill() {
	r.killOnce.Do(func() {
		_ = r.cmd.Process.Kill()
		<-r.exited
	})
}

// client returns a go-redis client for r that gives up quickly when the
// server is gone (no retries: a killed server refuses at once), closed
// when the test ends. The dial timeout stays generous: hundreds of
// goroutines dialling at once under -race on a loaded machine can take
// longer than a few hundred ms, and a failed lock means an extra gettoken.
func (r *redisServer) client(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{
		Addr:          r.Addr,
		MaxRetries:    -1,
		DialTimeout:   3 * time.Second,
		DialerRetries: 1,
		ReadTimeout:   3 * time.Second,
		WriteTimeout:  3 * time.Second,
	})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// TestMain fails the run if goroutines of go-redis or of this package
// outlive the tests: every client, subscription and Notifier must be
// closed.
func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the tests kill servers on purpose.
	redis.SetLogger(quietLogger{})
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func leakedGoroutines(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "TestMain") {
				continue
			}
			if strings.Contains(g, "github.com/redis/go-redis") || strings.Contains(g, "wecom/redisstore.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
