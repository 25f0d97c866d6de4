package queue

import "testing"

func TestSignalWakesEveryWaiter(t *testing.T) {
	var s Signal
	a, b := s.C(), s.C()
	s.Notify()
	for _, c := range []<-chan struct{}{a, b} {
		select {
		case <-c:
		default:
			t.Fatal("a waiter was not woken")
		}
	}
	select {
	case <-s.C():
		t.Fatal("the next channel is closed before the next Notify")
	default:
	}
}
