package record

import "time"

// DeliveryState is where a webhook delivery stands.
type DeliveryState string

// The states of a delivery. Pending is the only one that is not final.
const (
	DeliveryPending   DeliveryState = "pending"   // waiting for its (next) attempt
	DeliveryDelivered DeliveryState = "delivered" // the receiver answered 2xx
	DeliveryFailed    DeliveryState = "failed"    // a 3xx or 4xx answer, or its attempts ran out
	DeliveryRefused   DeliveryState = "refused"   // its URL is not allowed (an address the SSRF guard refuses)
	DeliveryCancelled DeliveryState = "cancelled" // its hook left the configuration
)

// Delivery is one webhook request to make, or made: an event sent to one
// hook. It is written to the database, body and all, before it is sent
// (in the transaction that moves the webhooks' outbox cursor), and every
// attempt's outcome is written after it.
type Delivery struct {
	ID int64
	// UID is the delivery's unique id, sent as X-Slipway-Delivery with
	// every attempt, so that receivers deduplicate by it.
	UID       string
	Hook      string // the hook's name in the configuration
	Repo      string
	URL       string // where its last attempt went (where it goes, before one)
	EventID   int64
	EventKind EventKind
	Format    string // json, slack, matrix
	State     DeliveryState
	Attempts  int
	// NextAttempt is when a pending delivery is sent (again).
	NextAttempt time.Time
	StatusCode  int    // of the last answer; 0: none
	Error       string // why the last attempt did not deliver
	// The last attempt's request and answer: headers as "Name: value"
	// lines, bodies capped (MaxDeliveryBody).
	RequestHeaders  string
	RequestBody     []byte
	ResponseHeaders string
	ResponseBody    []byte
	Created         time.Time
	DeliveredAt     time.Time // zero until delivered
	RedeliveryOf    int64     // the delivery this one sends again (redeliver); 0: none
}

// MaxDeliveryBody caps the request and response bodies kept with a
// delivery.
const MaxDeliveryBody = 64 << 10

// DeliveryAttempt is the outcome of one attempt at a delivery.
type DeliveryAttempt struct {
	At              time.Time
	State           DeliveryState // pending again (a retry at Next), or final
	Next            time.Time     // when State is pending
	URL             string
	StatusCode      int
	Error           string
	RequestHeaders  string
	ResponseHeaders string
	ResponseBody    []byte
}

// DeliveryQuery selects deliveries to list, newest first.
type DeliveryQuery struct {
	Repo   string
	Hook   string // "": every hook
	Failed bool   // only failed and refused ones
	Limit  int
}
