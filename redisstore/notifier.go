package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wecomkit/wecom"
)

// DefaultChannelSuffix is the name of the pub/sub channel of NewNotifier
// after the key prefix: the default channel is "wecom:jobs".
const DefaultChannelSuffix = "jobs"

// Notifier carries batch_job_result events between replicas over Redis
// pub/sub. Its JobNotifier publishes every event given to Notify (for
// example by a wecom.CallbackHandler with wecom.WithJobNotifier) on the
// channel, and every replica's Notifier delivers what arrives on the
// channel to its own JobNotifier, so a callback received by replica B
// wakes a WaitBatchResult / WaitExportResult with wecom.WithNotifier on
// replica A.
//
// Pub/sub is fire-and-forget: an event published while a replica is
// disconnected from Redis does not reach it. Waiters still poll (at their
// WithPollDelay), so a lost event delays a wait, it does not break it.
// When PUBLISH fails, Notify delivers the event locally and returns the
// error. Notifier implements wecom.EventBroker.
type Notifier struct {
	rdb     redis.UniversalClient
	channel string
	log     *slog.Logger
	jn      *wecom.JobNotifier
	ps      *redis.PubSub

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
}

var _ wecom.EventBroker = (*Notifier)(nil)

// NotifierOption configures NewNotifier.
type NotifierOption func(*notifierConfig)

type notifierConfig struct {
	prefix  string
	channel string
	log     *slog.Logger
	jnOpts  []wecom.NotifierOption
}

// WithNotifierKeyPrefix sets the prefix of the default channel name
// (default DefaultKeyPrefix, "wecom:"; the channel is prefix+"jobs").
func WithNotifierKeyPrefix(p string) NotifierOption {
	return func(c *notifierConfig) { c.prefix = p }
}

// WithChannel sets the whole name of the pub/sub channel, overriding the
// prefix. Every replica of a service must use the same channel.
func WithChannel(name string) NotifierOption {
	return func(c *notifierConfig) { c.channel = name }
}

// WithNotifierLogger sets the logger for messages dropped from the channel
// (default: silent).
func WithNotifierLogger(l *slog.Logger) NotifierOption {
	return func(c *notifierConfig) {
		if l != nil {
			c.log = l
		}
	}
}

// WithJobNotifierOptions passes options, such as
// wecom.WithNotifierRetention, to the wecom.NewJobNotifier the Notifier
// creates. A wecom.WithEventBroker among them is overridden.
func WithJobNotifierOptions(opts ...wecom.NotifierOption) NotifierOption {
	return func(c *notifierConfig) { c.jnOpts = append(c.jnOpts, opts...) }
}

// wireEvent is a BatchJobEvent on the channel, as JSON.
type wireEvent struct {
	JobID        string `json:"job_id"`
	JobType      string `json:"job_type,omitempty"`
	ErrCode      int    `json:"err_code"`
	ErrMsg       string `json:"err_msg,omitempty"`
	CreateTime   int64  `json:"create_time,omitempty"` // Unix seconds
	ToUserName   string `json:"to_user_name,omitempty"`
	FromUserName string `json:"from_user_name,omitempty"`
	MsgType      string `json:"msg_type,omitempty"`
	Event        string `json:"event,omitempty"`
}

func encodeEvent(ev *wecom.BatchJobEvent) ([]byte, error) {
	w := wireEvent{
		JobID: ev.JobID, JobType: ev.JobType, ErrCode: ev.ErrCode, ErrMsg: ev.ErrMsg,
		ToUserName: ev.ToUserName, FromUserName: ev.FromUserName, MsgType: ev.MsgType, Event: ev.Event,
	}
	if !ev.CreateTime.IsZero() {
		w.CreateTime = ev.CreateTime.Unix()
	}
	return json.Marshal(w)
}

func decodeEvent(b []byte) (*wecom.BatchJobEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	if w.JobID == "" {
		return nil, errors.New("no job_id")
	}
	ev := &wecom.BatchJobEvent{
		JobID: w.JobID, JobType: w.JobType, ErrCode: w.ErrCode, ErrMsg: w.ErrMsg,
		ToUserName: w.ToUserName, FromUserName: w.FromUserName, MsgType: w.MsgType, Event: w.Event,
	}
	if w.CreateTime != 0 {
		ev.CreateTime = time.Unix(w.CreateTime, 0)
	}
	return ev, nil
}

// NewNotifier subscribes to the channel on rdb and returns once Redis has
// confirmed the subscription (or ctx ends), so an event published after
// NewNotifier returns reaches this replica. ctx bounds only that start.
// It fails, naming Redis, when Redis cannot be reached; a service can then
// fall back to a local wecom.NewJobNotifier. Close the Notifier when done.
func NewNotifier(ctx context.Context, rdb redis.UniversalClient, opts ...NotifierOption) (*Notifier, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: nil redis client")
	}
	cfg := notifierConfig{prefix: DefaultKeyPrefix, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.channel == "" {
		cfg.channel = cfg.prefix + DefaultChannelSuffix
	}
	n := &Notifier{rdb: rdb, channel: cfg.channel, log: cfg.log, done: make(chan struct{})}
	n.jn = wecom.NewJobNotifier(append(cfg.jnOpts, wecom.WithEventBroker(n))...)

	ps := rdb.Subscribe(ctx, n.channel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("redisstore: subscribing to redis channel %q: %w", n.channel, err)
	}
	n.ps = ps
	ch := ps.Channel()
	go n.run(ch)
	return n, nil
}

// run delivers the events arriving on ch until the subscription closes.
func (n *Notifier) run(ch <-chan *redis.Message) {
	defer close(n.done)
	for msg := range ch {
		ev, err := decodeEvent([]byte(msg.Payload))
		if err != nil {
			n.log.Warn("redisstore: dropped a malformed job event from redis",
				slog.String("channel", msg.Channel), slog.Int("bytes", len(msg.Payload)), slog.String("error", err.Error()))
			continue
		}
		n.jn.Deliver(ev)
	}
}

// JobNotifier returns the notifier to give to wecom.WithJobNotifier (the
// callback handler) and wecom.WithNotifier (the waiters).
func (n *Notifier) JobNotifier() *wecom.JobNotifier { return n.jn }

// Channel returns the name of the pub/sub channel.
func (n *Notifier) Channel() string { return n.channel }

// Publish sends ev to every replica's Notifier (this one included) with
// PUBLISH. JobNotifier().Notify calls it; call Notify rather than Publish,
// so that the event is still delivered locally when Redis is down.
func (n *Notifier) Publish(ctx context.Context, ev *wecom.BatchJobEvent) error {
	if ev == nil || ev.JobID == "" {
		return errors.New("redisstore: Publish: event without a JobID")
	}
	b, err := encodeEvent(ev)
	if err != nil {
		return fmt.Errorf("redisstore: encoding job event: %w", err)
	}
	if err := n.rdb.Publish(ctx, n.channel, b).Err(); err != nil {
		return fmt.Errorf("redisstore: publishing job event to redis channel %q: %w", n.channel, err)
	}
	return nil
}

// Close ends the subscription and waits for its goroutine to stop. Events
// published afterwards are no longer delivered to this replica. Close is
// safe to call more than once; it does not close the redis client.
func (n *Notifier) Close() error {
	n.closeOnce.Do(func() {
		if err := n.ps.Close(); err != nil {
			n.closeErr = fmt.Errorf("redisstore: closing redis subscription: %w", err)
		}
		<-n.done
	})
	return n.closeErr
}
