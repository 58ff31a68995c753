// Command callback-server receives WeCom's batch_job_result callbacks with
// wecom.NewCallbackHandler: it checks the signature, decrypts the event,
// verifies the receiver id, and prints the event.
//
//	go run ./examples/callback-server          # demo: fake WeCom, one import, one callback, exit
//	go run ./examples/callback-server -serve -addr :8080 -token T -key K -corp wwCORPID
//
// By default it starts the embedded fake WeCom server (package wecomtest)
// and a callback server on -addr, submits a small import whose callback
// points at itself, waits for the job with wecom.WithNotifier (so the
// callback, not the next poll, ends the wait), prints the event and exits.
// With WECOM_CORP_ID and WECOM_CORP_SECRET set, the import goes to that
// corp instead, and -public-url must be the address WeCom can reach this
// server at.
//
// With -serve it only serves: every event is printed until the process is
// interrupted. -token, -key and -corp must then be the callback's Token,
// EncodingAESKey and your corp id.
//
// Flags:
//
//	-addr host:port   listen address (default 127.0.0.1:0, a free port;
//	                  with -serve, :8080)
//	-path p           callback path (default /wecom/callback)
//	-token t          callback token (default: random, demo only)
//	-key k            callback EncodingAESKey (default: random, demo only)
//	-corp id          receiver id to check (default: the corp in use)
//	-public-url url   callback URL given to WeCom (default http://<addr><path>)
//	-serve            serve until interrupted instead of running the demo
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/examples/internal/exampleutil"
	"github.com/wecomkit/wecom/wecomtest"
)

type options struct {
	addr, path, token, key, corp, publicURL string
	serve                                   bool
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "", "listen address (default 127.0.0.1:0; with -serve, :8080)")
	flag.StringVar(&o.path, "path", "/wecom/callback", "callback path")
	flag.StringVar(&o.token, "token", "", "callback token (default: random, demo only)")
	flag.StringVar(&o.key, "key", "", "callback EncodingAESKey (default: random, demo only)")
	flag.StringVar(&o.corp, "corp", "", "receiver id: your corp id (default: the corp in use)")
	flag.StringVar(&o.publicURL, "public-url", "", "callback URL given to WeCom (default http://<addr><path>)")
	flag.BoolVar(&o.serve, "serve", false, "serve until interrupted")
	flag.Parse()

	var err error
	if o.serve {
		err = serve(o)
	} else {
		err = demo(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "callback-server:", err)
		os.Exit(1)
	}
}

// handler returns the callback handler: it prints each event, and hands it
// to notifier so that a WaitBatchResult using WithNotifier wakes up.
func handler(cc *wecom.CallbackCrypto, notifier *wecom.JobNotifier) http.Handler {
	return wecom.NewCallbackHandler(cc, func(ctx context.Context, ev *wecom.BatchJobEvent) error {
		fmt.Printf("callback: job %s (%s) finished: errcode %d %q\n", ev.JobID, ev.JobType, ev.ErrCode, ev.ErrMsg)
		return nil // returning an error answers 500, and WeCom retries
	}, wecom.WithJobNotifier(notifier))
}

func serve(o options) error {
	if o.token == "" || o.key == "" || o.corp == "" {
		return errors.New("-serve needs -token, -key and -corp: the callback settings of your app")
	}
	cc, err := wecom.NewCallbackCrypto(o.token, o.key, o.corp)
	if err != nil {
		return err
	}
	addr := o.addr
	if addr == "" {
		addr = ":8080"
	}
	mux := http.NewServeMux()
	mux.Handle(o.path, handler(cc, wecom.NewJobNotifier()))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	fmt.Printf("callback-server: serving %s on %s (Ctrl-C to stop)\n", o.path, addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func demo(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := exampleutil.Connect(wecomtest.WithJobStepDelay(20 * time.Millisecond))
	if err != nil {
		return err
	}
	defer env.Close()
	fmt.Println("callback-server: running against", env.Describe())
	if env.Real() && o.publicURL == "" {
		return errors.New("against a real corp, -public-url must be the URL at which WeCom reaches this server")
	}
	if o.token == "" {
		o.token = rand.Text()[:16] // letters and digits, as WeCom issues
	}
	if o.key == "" {
		o.key = wecom.NewEncodingAESKey()
	}
	if o.corp == "" {
		o.corp = env.CorpID
	}
	cc, err := wecom.NewCallbackCrypto(o.token, o.key, o.corp)
	if err != nil {
		return err
	}

	addr := o.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	notifier := wecom.NewJobNotifier()
	mux := http.NewServeMux()
	mux.Handle(o.path, handler(cc, notifier))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	callbackURL := o.publicURL
	if callbackURL == "" {
		callbackURL = "http://" + ln.Addr().String() + o.path
	}
	fmt.Println("callback-server: listening at", callbackURL)

	members := []wecom.Member{
		{UserID: "cbdemo1", Name: "回调演示一", Email: "cbdemo1@example.com", Departments: []int{1}},
		{UserID: "cbdemo2", Name: "回调演示二", Email: "cbdemo2@example.com", Departments: []int{1}},
	}
	noInvite := false
	start := time.Now()
	res, err := env.Client.ImportMembers(ctx, wecom.ImportSync, members, wecom.ImportOptions{
		ToInvite: &noInvite,
		Callback: &wecom.JobCallback{URL: callbackURL, Token: o.token, EncodingAESKey: o.key},
		// Poll only every 30 s: the callback is what ends this wait.
		Wait: []wecom.WaitOption{wecom.WithPollDelay(30*time.Second, 30*time.Second), wecom.WithNotifier(notifier)},
	})
	if err != nil {
		return err
	}
	fmt.Printf("callback-server: %s job done after %v (woken by the callback): %d rows, %d failed\n",
		res.Type, time.Since(start).Round(time.Millisecond), res.Total, len(res.Failed()))
	return nil
}
