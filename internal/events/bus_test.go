package events

import (
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
)

func TestPublishReachesSubscribersOfItsType(t *testing.T) {
	b := NewBus()
	all := b.Subscribe(4)
	states := b.Subscribe(4, TypeState)
	b.Publish(Event{Type: TypeLog, Data: "line"})
	b.Publish(Event{Type: TypeState, Data: 1})

	if e := <-all.C; e.Type != TypeLog || e.Data != "line" || e.Time.IsZero() {
		t.Errorf("all got %+v first", e)
	}
	if e := <-all.C; e.Type != TypeState {
		t.Errorf("all got %+v second", e)
	}
	if e := <-states.C; e.Type != TypeState || e.Data != 1 {
		t.Errorf("states got %+v", e)
	}
	select {
	case e := <-states.C:
		t.Errorf("states got an extra %+v", e)
	default:
	}
}

func TestLaggingSubscriberIsDroppedNotBlocking(t *testing.T) {
	b := NewBus()
	slow := b.Subscribe(2)
	fast := b.Subscribe(100)
	for i := range 10 {
		b.Publish(Event{Type: TypeState, Data: i})
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 {
		t.Errorf("slow subscriber got %d events before the drop, want 2", n)
	}
	if !errors.Is(slow.Err(), ErrLagged) {
		t.Errorf("slow.Err() = %v, want ErrLagged", slow.Err())
	}
	if len(fast.C) != 10 {
		t.Errorf("fast subscriber has %d events, want 10", len(fast.C))
	}
	if b.Subscribers() != 1 {
		t.Errorf("%d subscribers left, want 1", b.Subscribers())
	}
}

func TestCloseIsIdempotentAndConcurrentSafe(t *testing.T) {
	b := NewBus()
	s := b.Subscribe(1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Publish(Event{Type: TypeDevice})
			}
		})
	}
	s.Close()
	s.Close()
	wg.Wait()
	if s.Err() != nil && !errors.Is(s.Err(), ErrLagged) {
		t.Errorf("Err = %v", s.Err())
	}
	if b.Subscribers() != 0 {
		t.Errorf("subscription still registered")
	}
}

// TestCoalescedKeepsTheNewestPerKeyAndNeverLags: a burst far larger than
// any buffer leaves one event per key, the newest, in first-seen order.
func TestCoalescedKeepsTheNewestPerKeyAndNeverLags(t *testing.T) {
	b := NewBus()
	c := b.SubscribeCoalesced(func(e Event) string { return e.Data.(string)[:1] }, TypeDevice)
	defer c.Close()
	for i := range 30000 {
		b.Publish(Event{Type: TypeDevice, Data: string(rune('a'+i%3)) + strconv.Itoa(i)})
	}
	b.Publish(Event{Type: TypeState, Data: "not subscribed"})
	<-c.Ready
	got := c.Take()
	var data []string
	for _, e := range got {
		data = append(data, e.Data.(string))
	}
	if want := []string{"a29997", "b29998", "c29999"}; !slices.Equal(data, want) {
		t.Errorf("took %v, want %v", data, want)
	}
	if rest := c.Take(); len(rest) != 0 {
		t.Errorf("a second Take returned %d events", len(rest))
	}
	c.Close()
	b.Publish(Event{Type: TypeDevice, Data: "after close"})
	if rest := c.Take(); len(rest) != 0 {
		t.Errorf("a closed subscription received %v", rest)
	}
}
