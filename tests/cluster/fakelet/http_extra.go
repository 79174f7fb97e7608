package main

// Backend endpoints for HTTP-aware forwarding tests (port 8080):
//
//	POST /count?key=K[&delay=ms]  increments counter K (shared by every pod, like a database behind them) and
//	                              answers its new value; a repeated Idempotency-Key answers the first result
//	                              without counting again. delay waits after counting, before answering.
//	GET  /count?key=K             answers counter K
//	GET  /ws                      WebSocket echo (text and binary messages come back unchanged)
//	GET  /upgrade                 with "Upgrade: kf-echo": 101, then a raw byte echo on the connection

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

type counters struct {
	mu     sync.Mutex
	values map[string]int64
	// per counter, Idempotency-Key -> the value its first request answered
	seen map[string]map[string]int64
}

func (c *counters) increment(key, idempotencyKey string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if idempotencyKey != "" {
		if v, ok := c.seen[key][idempotencyKey]; ok {
			return v
		}
	}
	c.values[key]++
	v := c.values[key]
	if idempotencyKey != "" {
		if c.seen[key] == nil {
			c.seen[key] = map[string]int64{}
		}
		c.seen[key][idempotencyKey] = v
	}
	return v
}

func (c *counters) get(key string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[key]
}

func registerHTTPExtras(mux *http.ServeMux) {
	c := &counters{values: map[string]int64{}, seen: map[string]map[string]int64{}}
	answer := func(w http.ResponseWriter, r *http.Request, v int64) {
		body := strconv.FormatInt(v, 10)
		w.Header().Set("X-Pod", podNameOf(r))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}
	mux.HandleFunc("POST /count", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		v := c.increment(r.URL.Query().Get("key"), r.Header.Get("Idempotency-Key"))
		if ms, _ := strconv.Atoi(r.URL.Query().Get("delay")); ms > 0 {
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		answer(w, r, v)
	})
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		answer(w, r, c.get(r.URL.Query().Get("key")))
	})
	mux.HandleFunc("GET /upgrade", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "kf-echo") {
			http.Error(w, "needs Upgrade: kf-echo", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: kf-echo\r\nConnection: Upgrade\r\nX-Pod: " +
			podNameOf(r) + "\r\n\r\n")
		rw.Flush()
		buf := make([]byte, 32<<10)
		for {
			n, err := rw.Read(buf)
			if n > 0 {
				if _, werr := conn.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-WebSocket-Key")
		if key == "" || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not a WebSocket handshake", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\nX-Pod: " + podNameOf(r) +
			"\r\n\r\n")
		rw.Flush()
		wsEcho(rw.Reader, rw.Writer)
	})
}

// wsEcho answers every data frame with the same payload, unmasked (server frames carry no mask),
// answers pings, and ends on a close frame.
func wsEcho(in *bufio.Reader, out *bufio.Writer) {
	for {
		var head [2]byte
		if _, err := io.ReadFull(in, head[:]); err != nil {
			return
		}
		opcode := head[0] & 0x0f
		length := uint64(head[1] & 0x7f)
		switch length {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(in, ext[:]); err != nil {
				return
			}
			length = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(in, ext[:]); err != nil {
				return
			}
			length = binary.BigEndian.Uint64(ext[:])
		}
		var mask [4]byte
		masked := head[1]&0x80 != 0
		if masked {
			if _, err := io.ReadFull(in, mask[:]); err != nil {
				return
			}
		}
		if length > 16<<20 {
			return
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(in, payload); err != nil {
			return
		}
		if masked {
			for i := range payload {
				payload[i] ^= mask[i%4]
			}
		}
		reply := opcode
		if opcode == 0x9 { // ping -> pong
			reply = 0xA
		} else if opcode == 0xA {
			continue
		}
		// fragments are echoed frame by frame with their own FIN bit and opcode
		out.WriteByte(head[0]&0x80 | reply)
		switch {
		case length < 126:
			out.WriteByte(byte(length))
		case length <= 0xffff:
			out.WriteByte(126)
			binary.Write(out, binary.BigEndian, uint16(length))
		default:
			out.WriteByte(127)
			binary.Write(out, binary.BigEndian, length)
		}
		out.Write(payload)
		if err := out.Flush(); err != nil || opcode == 0x8 {
			return
		}
	}
}
