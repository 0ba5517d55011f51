package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ProbeLevel is the level under the topic root the connection test uses:
// {root}/_bridge-test/{random}. It has two levels below the root, so it never matches a
// device's {root}/{id}/up|down/… topics, and device ACL patterns do not grant it.
const ProbeLevel = "_bridge-test"

// Test is the "test connection" action, meant to run before settings are saved. It validates
// cfg, connects once within ConnectTimeout (and ctx), which checks reachability, TLS and
// credentials, then subscribes to a probe topic under the root and publishes one QoS 1
// message to it, which checks that the account may read and write there; then disconnects.
// It returns nil or an error wrapping one of the Err… classes.
//
// The probe uses a clean session and the client ID ClientID+"-test", so it never touches the
// bridge's persistent session, except on a broker that forces the client ID to the username
// (Mosquitto's use_username_as_clientid, EMQX's use_username_as_clientid): there the probe
// replaces a running bridge's session with the same username. Test a new account, or stop the
// tenant's bridge first (docs/external-broker.md).
func Test(ctx context.Context, cfg Config) error {
	if err := Validate(cfg); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	if err := checkTarget(ctx, cfg); err != nil {
		return err
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return fmt.Errorf("%w: ca_cert_pem: %v", ErrInvalidConfig, err)
	}
	deadline := time.Now().Add(cfg.ConnectTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	o := mqtt.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID + "-test").
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetProtocolVersion(4).
		SetDialer(targetDialer(cfg)). // before SetConnectTimeout, which sets its timeout
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(time.Until(deadline)).
		SetKeepAlive(cfg.KeepAlive).
		SetOrderMatters(false)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	c := mqtt.NewClient(o)
	if err := wait(ctx, c.Connect()); err != nil {
		return fmt.Errorf("bridge: test connection: %w", classify(err))
	}
	defer c.Disconnect(100)

	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	topic := cfg.TopicRoot + "/" + ProbeLevel + "/" + hex.EncodeToString(nonce[:])
	payload := []byte("probe " + hex.EncodeToString(nonce[:]))
	got := make(chan struct{}, 1)
	sub := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if string(m.Payload()) == string(payload) {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	if err := wait(ctx, sub); err != nil {
		return fmt.Errorf("bridge: test connection: subscribe %s: %w", topic, classify(err))
	}
	if st, ok := sub.(*mqtt.SubscribeToken); ok && st.Result()[topic] == 0x80 {
		return fmt.Errorf("bridge: test connection: %w: the broker refused a subscription to %s; the account needs read and write access to %s/#",
			ErrNotAuthorized, topic, cfg.TopicRoot)
	}
	if err := wait(ctx, c.Publish(topic, 1, false, payload)); err != nil {
		return fmt.Errorf("bridge: test connection: publish %s: %w", topic, classify(err))
	}
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		// Brokers acknowledge a publish their ACL drops (Mosquitto does, MQTT 3.1.1 has no
		// way to refuse it), so a missing echo is how a write restriction shows.
		return fmt.Errorf("bridge: test connection: %w: the probe message published to %s never came back; the account needs read and write access to %s/#",
			ErrNotAuthorized, topic, cfg.TopicRoot)
	}
}

// wait waits for tok or ctx.
func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}
