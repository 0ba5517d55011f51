package protocol

// MaxLogLines bounds the lines in one log batch.
const MaxLogLines = 64

// LogBatch is a batch of log lines on {root}/{id}/up/log, sent only while debug is on. Seq is
// the sequence number of the first line; line i has Seq+i. The counter starts at 0 at boot and
// counts every line the device captured, so a jump shows lines lost in transit, and Dropped
// counts lines the device itself discarded (ring buffer full) just before this batch.
type LogBatch struct {
	Seq     int64     `json:"seq"`
	Dropped int64     `json:"dropped,omitempty"`
	Lines   []LogLine `json:"lines"`
}

// LogLine is one log line. MS is the device's uptime in milliseconds when it was logged
// (esp_log_timestamp()); Msg has no trailing newline and no ANSI colour codes.
type LogLine struct {
	Level string `json:"level"`
	Tag   string `json:"tag,omitempty"`
	Msg   string `json:"msg"`
	MS    int64  `json:"ms"`
}

// DecodeLogBatch decodes a log payload: at most MaxLogSize bytes and 1 to MaxLogLines lines.
func DecodeLogBatch(data []byte) (LogBatch, error) {
	o, err := open(KindLog, data, MaxLogSize)
	if err != nil {
		return LogBatch{}, err
	}
	b := LogBatch{
		Seq:     o.integer("seq", true, 0, MaxSafeInteger),
		Dropped: o.integer("dropped", false, 0, MaxSafeInteger),
	}
	items := o.array("lines", true, 1, MaxLogLines)
	if o.r.err != nil {
		return LogBatch{}, o.r.err
	}
	b.Lines = make([]LogLine, 0, len(items))
	for i, raw := range items {
		l := o.r.object(index("lines", i), raw)
		line := LogLine{
			Level: l.enum("level", true, LogLevels()...),
			Tag:   l.str("tag", false, MaxLogTagLength),
			Msg:   l.str("msg", true, MaxLogMessageLength),
			MS:    l.integer("ms", true, 0, MaxSafeInteger),
		}
		b.Lines = append(b.Lines, line)
	}
	return done(b, o.r)
}

// EncodeLogBatch encodes a log payload.
func EncodeLogBatch(b LogBatch) ([]byte, error) { return marshal(b, DecodeLogBatch) }
