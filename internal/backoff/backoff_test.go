package backoff

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

func TestDelaysDoubleAndStartOver(t *testing.T) {
	now := time.Now()
	b := New(time.Second, 8*time.Second, func() time.Time { return now })
	var got []time.Duration
	for range 5 {
		got = append(got, b.Fail("192.0.2.1"))
	}
	if fmt.Sprint(got) != "[1s 2s 4s 8s 8s]" {
		t.Errorf("delays %v", got)
	}
	if d := b.Wait("192.0.2.1"); d != 8*time.Second {
		t.Errorf("Wait = %v, want 8s", d)
	}
	if d := b.Wait("198.51.100.1"); d != 0 {
		t.Errorf("an address that never failed waits %v", d)
	}
	if d := b.Fail("192.0.2.2"); d != time.Second {
		t.Errorf("another address starts at %v", d)
	}
	b.Succeed("192.0.2.1")
	if d := b.Fail("192.0.2.1"); d != time.Second {
		t.Errorf("after success delay %v", d)
	}
	now = now.Add(time.Minute)
	if d := b.Fail("192.0.2.2"); d != time.Second {
		t.Errorf("after a quiet minute delay %v", d)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	now := time.Now()
	b := New(time.Second, time.Minute, func() time.Time { return now })
	for i := range MaxTracked + 500 {
		b.Fail("10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
	}
	if n := len(b.failures); n > MaxTracked {
		t.Errorf("%d addresses tracked, limit %d", n, MaxTracked)
	}
	if d := b.Fail("192.0.2.1"); d != time.Second {
		t.Errorf("a new address starts at %v", d)
	}
	for range 20 {
		b.Fail("192.0.2.1")
	}
	if d := b.Wait("192.0.2.1"); d != time.Minute {
		t.Errorf("the delay is capped at %v, got %v", time.Minute, d)
	}
	now = now.Add(3 * time.Minute)
	if d := b.Fail("192.0.2.1"); d != time.Second {
		t.Errorf("after a quiet spell the delay restarts at 1 s, got %v", d)
	}
}
