// Command fakelet is a tiny stand-in for the kubelet's streaming server, used by
// kf's test cluster. It owns the node's kubelet port and serves only
// /portForward/{namespace}/{pod}[/{uid}] with the kubelet's own port-forward
// library (WebSocket v4.channel.k8s.io and SPDY/3.1), so both kf and
// `kubectl port-forward` work through a real kube-apiserver.
//
// Backends ("containers") of every pod on the node:
//
//	8080  HTTP/1.1: GET / (pod name), GET /bytes?n=N, POST /sink, GET /delay?ms=N
//	9000  raw TCP echo
//	other the address the pod's annotation fakelet.kf.test/ports maps it to
//	      ("5432=127.0.0.1:15432,3306=127.0.0.1:13306": real servers on loopback), else
//	      connection refused (reported on the error stream like the kubelet does)
//
// Like the kubelet, each forwarded stream is a real loopback TCP connection to
// an in-process server. The same servers are reachable directly on loopback
// (pod name "direct") as a "physical limit" baseline for benchmarks.
//
// Pod existence comes from an informer on the node's pods: forwarding to an
// unknown pod fails with "... not found", and when a pod is deleted from the
// API all of its open forwarded streams are closed at once.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

const (
	httpPort = 8080
	echoPort = 9000
)

var (
	flagKubeconfig  = flag.String("kubeconfig", "", "kubeconfig used to watch pods")
	flagNodeName    = flag.String("node-name", "kf-node", "name of the node whose pods are served")
	flagListen      = flag.String("listen", "127.0.0.1:10250", "address of the kubelet streaming server (HTTPS)")
	flagDirectHTTP  = flag.String("direct-http", "127.0.0.1:"+envOr("KF_FAKELET_DIRECT_HTTP_PORT", "18980"), "loopback address of the HTTP backend")
	flagDirectEcho  = flag.String("direct-echo", "127.0.0.1:"+envOr("KF_FAKELET_DIRECT_ECHO_PORT", "18990"), "loopback address of the echo backend")
	flagIdleTimeout = flag.Duration("streaming-connection-idle-timeout", 4*time.Hour, "idle timeout of a port-forward connection (kubelet default 4h)")
	flagVerbose     = flag.Bool("v", false, "log every forwarded stream")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ---------------------------------------------------------------- pod registry

type podEntry struct {
	uid     string
	streams map[int64]context.CancelCauseFunc
	// container port -> loopback address of the real server behind it (from the pod's annotation)
	backends map[int32]string
}

// portsAnnotation maps a pod's container ports to real server processes on loopback.
const portsAnnotation = "fakelet.kf.test/ports"

func parseBackends(p *v1.Pod) map[int32]string {
	out := map[int32]string{}
	for _, item := range strings.Split(p.Annotations[portsAnnotation], ",") {
		port, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(port, 10, 32)
		if err != nil {
			log.Printf("pod %s/%s: bad %s entry %q", p.Namespace, p.Name, portsAnnotation, item)
			continue
		}
		out[int32(n)] = addr
	}
	return out
}

type registry struct {
	mu     sync.Mutex
	pods   map[string]*podEntry // "ns/name" -> entry
	nextID int64
	client kubernetes.Interface
	synced func() bool
}

var errPodDeleted = errors.New("pod deleted")

func key(ns, name string) string { return ns + "/" + name }

func (r *registry) upsert(p *v1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := key(p.Namespace, p.Name)
	e := r.pods[k]
	if e != nil && e.uid != string(p.UID) {
		// Same name, new pod: the old one is gone.
		for _, c := range e.streams {
			c(errPodDeleted)
		}
		e = nil
	}
	if e == nil {
		e = &podEntry{uid: string(p.UID), streams: map[int64]context.CancelCauseFunc{}}
		r.pods[k] = e
	}
	e.backends = parseBackends(p)
}

// backend is the address a pod's port is served from by a real server, if its annotation names one.
func (r *registry) backend(ns, name string, port int32) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.pods[key(ns, name)]; e != nil {
		addr, ok := e.backends[port]
		return addr, ok
	}
	return "", false
}

func (r *registry) remove(ns, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := key(ns, name)
	if e := r.pods[k]; e != nil {
		if len(e.streams) > 0 {
			log.Printf("pod %s deleted: closing %d forwarded stream(s)", k, len(e.streams))
		}
		for _, c := range e.streams {
			c(errPodDeleted)
		}
		delete(r.pods, k)
	}
}

// lookup returns the pod's uid, asking the API server when the informer does
// not know the pod (yet).
func (r *registry) lookup(ctx context.Context, ns, name string) (string, bool) {
	r.mu.Lock()
	e := r.pods[key(ns, name)]
	r.mu.Unlock()
	if e != nil {
		return e.uid, true
	}
	p, err := r.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || p.Spec.NodeName != *flagNodeName {
		return "", false
	}
	r.upsert(p)
	return string(p.UID), true
}

// attach registers a stream of a pod; ok is false if the pod is unknown.
func (r *registry) attach(ns, name, uid string, cancel context.CancelCauseFunc) (id int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.pods[key(ns, name)]
	if e == nil || (uid != "" && e.uid != uid) {
		return 0, false
	}
	r.nextID++
	e.streams[r.nextID] = cancel
	return r.nextID, true
}

func (r *registry) detach(ns, name string, id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.pods[key(ns, name)]; e != nil {
		delete(e.streams, id)
	}
}

// ---------------------------------------------------------------- backends

// podOfConn maps the local port of a forwarded loopback connection to the pod
// name, so the HTTP backend can answer with the name of the pod it "runs" in.
var podOfConn sync.Map // int (client port) -> string (pod name)

var zeros = make([]byte, 1<<20)

func podNameOf(r *http.Request) string {
	if ap, err := netip(r.RemoteAddr); err == nil {
		if v, ok := podOfConn.Load(ap); ok {
			return v.(string)
		}
	}
	return "direct"
}

func netip(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(p)
}

func httpBackend() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		name := podNameOf(r)
		w.Header().Set("X-Pod", name)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(name)))
		io.WriteString(w, name)
	})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad n", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Pod", podNameOf(r))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			c := int64(len(zeros))
			if n < c {
				c = n
			}
			if _, err := w.Write(zeros[:c]); err != nil {
				return
			}
			n -= c
		}
	})
	mux.HandleFunc("POST /sink", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 256<<10)
		n, err := io.CopyBuffer(io.Discard, r.Body, buf)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Pod", podNameOf(r))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	mux.HandleFunc("GET /delay", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		name := podNameOf(r)
		w.Header().Set("X-Pod", name)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, name)
	})
	registerHTTPExtras(mux)
	return mux
}

func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			log.Printf("echo accept: %v", err)
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 256<<10)
			io.CopyBuffer(c, c, buf)
		}()
	}
}

// ---------------------------------------------------------------- port forward

type forwarder struct {
	reg       *registry
	namespace string
	httpAddr  string
	echoAddr  string
}

func (f *forwarder) PortForward(ctx context.Context, name, uid string, port int32, stream io.ReadWriteCloser) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	id, ok := f.reg.attach(f.namespace, name, uid, cancel)
	if !ok {
		return fmt.Errorf("failed to find sandbox for pod %q in namespace %q: pod not found", name, f.namespace)
	}
	defer f.reg.detach(f.namespace, name, id)

	addr, real := f.reg.backend(f.namespace, name, port)
	switch {
	case real:
	case port == httpPort:
		addr = f.httpAddr
	case port == echoPort:
		addr = f.echoAddr
	default:
		return fmt.Errorf("failed to connect to localhost:%d inside namespace %q: dial tcp4 127.0.0.1:%d: connect: connection refused", port, f.namespace+"/"+name, port)
	}
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		return fmt.Errorf("failed to connect to localhost:%d inside namespace %q: %v", port, f.namespace+"/"+name, err)
	}
	tcp := conn.(*net.TCPConn)
	defer tcp.Close()
	lport := tcp.LocalAddr().(*net.TCPAddr).Port
	podOfConn.Store(lport, name)
	defer podOfConn.Delete(lport)
	if *flagVerbose {
		log.Printf("forward %s/%s:%d (local port %d)", f.namespace, name, port, lport)
	}

	// client -> pod
	go func() {
		buf := make([]byte, 256<<10)
		io.CopyBuffer(tcp, stream, buf)
		tcp.CloseWrite()
	}()
	// pod -> client; the forward ends when the pod side is done, like the kubelet.
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		_, err := io.CopyBuffer(stream, tcp, buf)
		done <- err
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		tcp.Close()
		if errors.Is(context.Cause(ctx), errPodDeleted) {
			return fmt.Errorf("pod %q in namespace %q not found: deleted while forwarding, sandbox is not running", name, f.namespace)
		}
		return context.Cause(ctx)
	}
}

func (reg *registry) handlePortForward(w http.ResponseWriter, r *http.Request) {
	ns, name, uid := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("uid")
	opts, err := portforward.NewV4Options(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	knownUID, ok := reg.lookup(r.Context(), ns, name)
	if ok && uid == "" {
		uid = knownUID
	}
	// Like a CRI runtime: the stream is set up, and PortForward reports
	// "not found" on the error stream when the pod is gone.
	f := &forwarder{reg: reg, namespace: ns, httpAddr: *flagDirectHTTP, echoAddr: *flagDirectEcho}
	portforward.ServePortForward(w, r, f, name, uid, opts, *flagIdleTimeout, 30*time.Second, portforward.SupportedProtocols)
}

// ---------------------------------------------------------------- main

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "fakelet"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost", *flagNodeName},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	cfg, err := clientcmd.BuildConfigFromFlags("", *flagKubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	reg := &registry{pods: map[string]*podEntry{}, client: client}

	// Backends first: they must be up before any forward can arrive.
	hl, err := net.Listen("tcp4", *flagDirectHTTP)
	if err != nil {
		log.Fatalf("listen %s: %v", *flagDirectHTTP, err)
	}
	el, err := net.Listen("tcp4", *flagDirectEcho)
	if err != nil {
		log.Fatalf("listen %s: %v", *flagDirectEcho, err)
	}
	go func() { log.Fatal((&http.Server{Handler: httpBackend()}).Serve(hl)) }()
	go serveEcho(el)

	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", *flagNodeName).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { reg.upsert(o.(*v1.Pod)) },
		UpdateFunc: func(_, o any) { reg.upsert(o.(*v1.Pod)) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*v1.Pod); ok {
				reg.remove(p.Namespace, p.Name)
			}
		},
	})
	stop := make(chan struct{})
	factory.Start(stop)
	reg.synced = inf.HasSynced

	cert, err := selfSigned()
	if err != nil {
		log.Fatalf("cert: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/portForward/{ns}/{pod}", reg.handlePortForward)
	mux.HandleFunc("/portForward/{ns}/{pod}/{uid}", reg.handlePortForward)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !inf.HasSynced() {
			http.Error(w, "informer not synced", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			NextProtos:   []string{"http/1.1"}, // upgrades need HTTP/1.1
		},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     log.New(os.Stderr, "http: ", log.LstdFlags),
	}
	ln, err := net.Listen("tcp4", *flagListen)
	if err != nil {
		log.Fatalf("listen %s: %v", *flagListen, err)
	}
	log.Printf("fakelet: node %s, streaming on https://%s, http backend %s, echo backend %s",
		*flagNodeName, *flagListen, *flagDirectHTTP, *flagDirectEcho)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		close(stop)
		ctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		srv.Shutdown(ctx)
		os.Exit(0)
	}()
	if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	select {}
}
