package redisstore_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wecomkit/wecom"
	"github.com/wecomkit/wecom/redisstore"
)

// Every replica of a service builds its client on the same Redis: they
// share one access_token, and a callback received by any replica wakes a
// wait on any other. (Not run: it needs a Redis server and a corp.)
func ExampleNew() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()

	store, err := redisstore.New(rdb, redisstore.WithKeyPrefix("myapp:wecom:"))
	if err != nil {
		log.Fatal(err)
	}
	client, err := wecom.NewClient("wwcorpid", "corpsecret", wecom.WithTokenStore(store))
	if err != nil {
		log.Fatal(err)
	}

	notifier, err := redisstore.NewNotifier(ctx, rdb, redisstore.WithNotifierKeyPrefix("myapp:wecom:"))
	if err != nil {
		log.Fatal(err) // or fall back to wecom.NewJobNotifier()
	}
	defer notifier.Close()

	cc, err := wecom.NewCallbackCrypto("callbackToken", "encodingAESKey43charactersLong0000000000000", "wwcorpid")
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/wecom/callback", wecom.NewCallbackHandler(cc,
		func(context.Context, *wecom.BatchJobEvent) error { return nil },
		wecom.WithJobNotifier(notifier.JobNotifier())))

	res, err := client.WaitBatchResult(ctx, "jobid",
		wecom.WithPollDelay(10*time.Second, time.Minute),
		wecom.WithNotifier(notifier.JobNotifier()))
	if err != nil {
		log.Fatal(err)
	}
	log.Println(res.Status)
}
