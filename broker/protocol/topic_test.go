package protocol

import (
	"strings"
	"testing"
)

const (
	testDevice = "01hzx3k9qv4m7c2d8e5f6g7h8j"
	testOther  = "01hzx3k9qv4m7c2d8e5f6g7h8k"
)

func TestBuildTopics(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ got, want string }{
		{DownlinkCommand("espadmin", testDevice), "espadmin/" + testDevice + "/down/cmd"},
		{DownlinkFilter("espadmin", testDevice), "espadmin/" + testDevice + "/down/#"},
		{Uplink("fleet/eu", testDevice, KindLog), "fleet/eu/" + testDevice + "/up/log"},
		{UplinkFilter("espadmin", ""), "espadmin/+/up/#"},
		{UplinkFilter("espadmin", KindStatus), "espadmin/+/up/status"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	// What a device subscribes to must pass its own ACL.
	if !DeviceMaySubscribe("espadmin", testDevice, DownlinkFilter("espadmin", testDevice)) {
		t.Error("a device may not subscribe to its own downlink filter")
	}
}

func TestValidDeviceIDAndRoot(t *testing.T) {
	t.Parallel()
	ids := map[string]bool{
		testDevice: true, "a": true, "dev_1-x": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "A": false, "a/b": false, "a+b": false, "a#": false,
		"$sys": false, "a\x00": false, "a b": false, "é": false, "a.b": false,
	}
	for id, want := range ids {
		if got := ValidDeviceID(id); got != want {
			t.Errorf("ValidDeviceID(%q) = %v, want %v", id, got, want)
		}
	}
	roots := map[string]bool{
		"espadmin": true, "fleet/eu-1": true, "A.b_c": true, strings.Repeat("r", 64): true,
		"": false, "/espadmin": false, "espadmin/": false, "a//b": false, "$SYS": false, "a/+": false,
		"#": false, "a b": false, strings.Repeat("r", 65): false,
	}
	for root, want := range roots {
		if got := ValidRoot(root); got != want {
			t.Errorf("ValidRoot(%q) = %v, want %v", root, got, want)
		}
	}
}

func TestDeviceMaySubscribe(t *testing.T) {
	t.Parallel()
	own := "espadmin/" + testDevice
	cases := []struct {
		name   string
		filter string
		want   bool
	}{
		{"own command topic", own + "/down/cmd", true},
		{"own downlink #", own + "/down/#", true},
		{"own downlink +", own + "/down/+", true},
		{"own downlink + then literal", own + "/down/+/x", true},
		{"all devices' commands", "espadmin/+/down/cmd", false},
		{"root #", "espadmin/#", false},
		{"#", "#", false},
		{"+/+/down/cmd", "+/+/down/cmd", false},
		{"+/#", "+/#", false},
		{"shared own", "$share/g/" + own + "/down/cmd", false},
		{"queue own", "$queue/" + own + "/down/cmd", false},
		{"$SYS", "$SYS/#", false},
		{"other device", "espadmin/" + testOther + "/down/cmd", false},
		{"own prefix of another ID", "espadmin/" + testDevice + "x/down/cmd", false},
		{"own uplink", own + "/up/status", false},
		{"own subtree", own + "/#", false},
		{"own + direction", own + "/+/cmd", false},
		{"down without level", own + "/down", false},
		{"empty level", own + "/down//cmd", false},
		{"trailing empty level", own + "/down/cmd/", false},
		{"# in the middle", own + "/down/#/cmd", false},
		{"wildcard inside a level", own + "/down/c#", false},
		{"NUL", own + "/down/cmd\x00", false},
		{"invalid UTF-8", own + "/down/\xff", false},
		{"overlong", own + "/down/" + strings.Repeat("x", MaxTopicLength), false},
		{"empty", "", false},
		{"other root", "other/" + testDevice + "/down/cmd", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := DeviceMaySubscribe("espadmin", testDevice, c.filter); got != c.want {
				t.Errorf("DeviceMaySubscribe(%q) = %v, want %v", c.filter, got, c.want)
			}
		})
	}
	// A hostile device ID or root never widens anything.
	for _, id := range []string{"+", "#", "", "a/b"} {
		if DeviceMaySubscribe("espadmin", id, "espadmin/"+id+"/down/cmd") {
			t.Errorf("device ID %q may subscribe", id)
		}
	}
	if DeviceMaySubscribe("+", testDevice, "+/"+testDevice+"/down/cmd") {
		t.Error("root + accepted")
	}
}

func TestDeviceMayPublishReceiveWill(t *testing.T) {
	t.Parallel()
	own := "espadmin/" + testDevice
	pub := []struct {
		topic  string
		retain bool
		want   bool
	}{
		{own + "/up/status", false, true},
		{own + "/up/status", true, true},
		{own + "/up/ack", false, true},
		{own + "/up/ack", true, false},
		{own + "/up/log", true, false},
		{own + "/up/nope", false, false},
		{own + "/down/cmd", false, false},
		{"espadmin/" + testOther + "/up/status", false, false},
		{"espadmin/+/up/status", false, false},
		{own + "/up/status/x", false, false},
		{own + "/up/status\x00", false, false},
		{"$SYS/x", false, false},
	}
	for _, c := range pub {
		if got := DeviceMayPublish("espadmin", testDevice, c.topic, c.retain); got != c.want {
			t.Errorf("DeviceMayPublish(%q, retain %v) = %v, want %v", c.topic, c.retain, got, c.want)
		}
	}
	recv := map[string]bool{
		own + "/down/cmd":                     true,
		own + "/down/x/y":                     true,
		own + "/down/":                        false,
		own + "/down//x":                      false,
		own + "/up/status":                    false,
		"espadmin/" + testOther + "/down/cmd": false,
		own + "/down/+":                       false,
		"$SYS/broker/load":                    false,
	}
	for topic, want := range recv {
		if got := DeviceMayReceive("espadmin", testDevice, topic); got != want {
			t.Errorf("DeviceMayReceive(%q) = %v, want %v", topic, got, want)
		}
	}
	if !DeviceMaySetWill("espadmin", testDevice, own+"/up/status", []byte(WillPayload)) {
		t.Error("the protocol's own will is refused")
	}
	if DeviceMaySetWill("espadmin", testDevice, own+"/up/status", []byte(`{"v":1,"online":true}`)) {
		t.Error("an online will is accepted")
	}
	if DeviceMaySetWill("espadmin", testDevice, "espadmin/"+testOther+"/up/status", []byte(WillPayload)) {
		t.Error("a will on another device's status is accepted")
	}
}
