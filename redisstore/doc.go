// Package redisstore shares what the replicas of a service need to share
// when they talk to WeCom, through Redis (github.com/redis/go-redis/v9):
//
//   - Store, a wecom.TokenStore and wecom.TokenLocker. The replicas use one
//     access_token, and N replicas starting cold call gettoken once: the
//     first takes a short-lived lock (SET NX PX with a random value), the
//     others wait for it (bounded) and find the token it stored. A token
//     lives under its key with a Redis TTL equal to its remaining lifetime.
//     A token WeCom rejected is removed by a compare-and-delete, so a
//     replica never removes a token another one has just fetched. Keys hold
//     the corp id and a hash of the secret, never the secret.
//   - Notifier, which carries batch_job_result events over Redis pub/sub,
//     so that the replica receiving WeCom's callback wakes a
//     WaitBatchResult or WaitExportResult running on another replica.
//
// Each wecom.Client keeps its token in process in front of the Store, so
// a warm AccessToken does not touch Redis. When Redis is unavailable,
// calls still work: the client logs the failure once and fetches tokens
// directly; Notify delivers locally and returns the error; waiters still
// poll. Errors from this package start with "redisstore:" and say which
// Redis operation failed.
//
// A service wires it up once per replica:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	store, err := redisstore.New(rdb)
//	// …
//	client, err := wecom.NewClient(corpID, corpSecret, wecom.WithTokenStore(store))
//	// …
//	notifier, err := redisstore.NewNotifier(ctx, rdb)
//	// …
//	defer notifier.Close()
//	http.Handle("/wecom/callback", wecom.NewCallbackHandler(cc, onEvent,
//		wecom.WithJobNotifier(notifier.JobNotifier())))
//	res, err := client.WaitBatchResult(ctx, jobID, wecom.WithNotifier(notifier.JobNotifier()))
package redisstore
