// Package mysqltest starts private MariaDB servers for feedcdc's integration
// tests, or points them at an external MySQL 8 / MariaDB server.
//
// Invariants:
//   - A private server is a `mariadbd --no-defaults` with its own temporary
//     datadir, socket and pid file, listening on a free port of 127.0.0.1
//     only, with the binlog on (ROW, FULL image, FULL row metadata, GTID
//     strict mode) and a unique server id. It never touches the machine's
//     system database or its configuration files.
//   - Every server started here is stopped by its own PID and its datadir
//     removed when Stop is called. If the test binary dies without calling
//     Stop (a panic, a timeout, SIGKILL), the kernel kills mariadbd with it
//     (PR_SET_PDEATHSIG) and the next Start removes the dead owner's datadir.
//   - Two users exist: an admin that writes fixtures, and a least-privilege
//     connector user (REPLICATION SLAVE, REPLICATION CLIENT, SELECT; on
//     MySQL also LOCK TABLES, for the feeds' visibility fence).
//   - With FEEDCDC_TEST_MYSQL_DSN set (a go-sql-driver DSN of an admin user
//     of an external server), Main uses that server instead, creates the
//     connector user there, and never stops it.
package mysqltest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// EnvDSN names the environment variable that points the tests at an external
// server instead of a private mariadbd.
const EnvDSN = "FEEDCDC_TEST_MYSQL_DSN"

// Options configure a private server.
type Options struct {
	// ServerID is the server's server_id; 0 picks a unique one.
	ServerID uint32
	// Args are extra mariadbd flags appended after the defaults, so a flag
	// given here overrides the default of the same name (for example
	// "--binlog-format=STATEMENT" or "--skip-log-bin").
	Args []string
	// StartTimeout bounds the wait for readiness; 0 means 60 s.
	StartTimeout time.Duration
	// BaseDir is where the server's folder is created (default: the
	// system temporary directory).
	BaseDir string
}

// Server is a running MySQL-protocol server for tests.
type Server struct {
	Flavor        string // "mariadb" or "mysql"
	Version       string
	Host          string
	Port          int
	ServerID      uint32
	AdminUser     string
	AdminPassword string
	CDCUser       string
	CDCPassword   string
	// Dir is the private server's folder (datadir, socket, logs); "" for an
	// external server.
	Dir string

	external bool
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
	dbSeq    int
	mu       sync.Mutex
}

const dirPrefix = "feedcdc-mysqltest-"

// Main is for TestMain: it starts a private server (or connects to
// FEEDCDC_TEST_MYSQL_DSN), stores it in *out, runs the tests and stops the
// server, returning the exit code for os.Exit.
func Main(m *testing.M, opts Options, out **Server) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var (
		s   *Server
		err error
	)
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		s, err = External(ctx, dsn)
	} else {
		s, err = Start(ctx, opts)
	}
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mysqltest: %v\n", err)
		return 1
	}
	*out = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "mysqltest: stop: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// External reports whether the server is not one started by this package.
func (s *Server) External() bool { return s.external }

func dsn(user, pass, addr, db string) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, pass, "tcp", addr, db
	c.MultiStatements = true
	c.InterpolateParams = true
	c.Params = map[string]string{"charset": "utf8mb4"}
	c.Timeout = 10 * time.Second
	return c.FormatDSN()
}

// AdminDSN is a go-sql-driver DSN of the admin user (multiStatements on).
func (s *Server) AdminDSN(db string) string {
	return dsn(s.AdminUser, s.AdminPassword, s.Addr(), db)
}

// CDCDSN is a go-sql-driver DSN of the least-privilege connector user.
func (s *Server) CDCDSN(db string) string { return dsn(s.CDCUser, s.CDCPassword, s.Addr(), db) }

// Admin opens an admin pool on db, closed when the test ends.
func (s *Server) Admin(t testing.TB, db string) *sql.DB {
	t.Helper()
	pool, err := sql.Open("mysql", s.AdminDSN(db))
	if err != nil {
		t.Fatalf("mysqltest: open admin pool: %v", err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// NewDatabase creates a fresh utf8mb4 database named after prefix and the
// test, dropped when the test ends, and returns its name.
func (s *Server) NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	s.mu.Lock()
	s.dbSeq++
	seq := s.dbSeq
	s.mu.Unlock()
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("%s_%d_%s", sanitize(prefix), seq, hex.EncodeToString(b[:]))
	pool, err := sql.Open("mysql", s.AdminDSN(""))
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pool.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
		t.Fatalf("mysqltest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		p, err := sql.Open("mysql", s.AdminDSN(""))
		if err != nil {
			return
		}
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = p.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
	})
	return name
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "db"
	}
	out := b.String()
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}

// Start starts a private mariadbd. The caller must Stop it.
func Start(ctx context.Context, opts Options) (*Server, error) {
	mariadbd, err := findBinary("mariadbd", "/usr/sbin/mariadbd")
	if err != nil {
		return nil, err
	}
	installDB, err := findBinary("mariadb-install-db", "/usr/bin/mariadb-install-db")
	if err != nil {
		return nil, err
	}
	sweepStale()
	if opts.BaseDir != "" {
		if err := os.MkdirAll(opts.BaseDir, 0o755); err != nil {
			return nil, fmt.Errorf("mysqltest: %w", err)
		}
	}
	dir, err := os.MkdirTemp(opts.BaseDir, fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("mysqltest: temp dir: %w", err)
	}
	s := &Server{Flavor: "mariadb", Host: "127.0.0.1", Dir: dir, AdminUser: "root", AdminPassword: "",
		CDCUser: "feedcdc", CDCPassword: "feedcdc-" + randHex(6), done: make(chan struct{})}
	fail := func(err error) (*Server, error) {
		_ = s.Stop()
		return nil, err
	}
	datadir := filepath.Join(dir, "data")
	// Every server keeps its temporary files in its own folder, never in a
	// /tmp shared with other processes.
	inst := exec.CommandContext(ctx, installDB, "--no-defaults", "--datadir="+datadir, "--tmpdir="+dir, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := inst.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("mysqltest: mariadb-install-db failed: %w\n%s", err, tail(out, 30)))
	}
	s.ServerID = opts.ServerID
	if s.ServerID == 0 {
		s.ServerID = uniqueServerID()
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	// Port races with other processes are possible between picking a free
	// port and mariadbd binding it; retry a few times with a new port.
	for attempt := 0; ; attempt++ {
		s.Port, err = freePort()
		if err != nil {
			return fail(err)
		}
		err = s.launch(ctx, mariadbd, opts, timeout)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(s.ErrorLogTail(20), "Address already in use") {
			s.done = make(chan struct{})
			continue
		}
		return fail(err)
	}
	if err := s.setupUsers(ctx); err != nil {
		return fail(err)
	}
	return s, nil
}

func (s *Server) launch(ctx context.Context, mariadbd string, opts Options, timeout time.Duration) error {
	args := []string{
		"--no-defaults",
		"--datadir=" + filepath.Join(s.Dir, "data"),
		"--socket=" + filepath.Join(s.Dir, "my.sock"),
		"--pid-file=" + filepath.Join(s.Dir, "mariadbd.pid"),
		"--port=" + strconv.Itoa(s.Port),
		"--bind-address=127.0.0.1",
		"--user=root",
		"--character-set-server=utf8mb4",
		"--collation-server=utf8mb4_general_ci",
		"--server-id=" + strconv.FormatUint(uint64(s.ServerID), 10),
		"--log-bin=" + filepath.Join(s.Dir, "data", "binlog"),
		"--binlog-format=ROW",
		"--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL",
		"--gtid-strict-mode=1",
		"--log-error=" + filepath.Join(s.Dir, "mariadbd.err"),
		"--tmpdir=" + s.Dir,
		"--innodb-buffer-pool-size=256M",
		"--innodb-log-file-size=256M",
		"--innodb-flush-log-at-trx-commit=2",
		"--max-connections=500",
		"--max-allowed-packet=64M",
		"--skip-innodb-doublewrite",
		"--performance-schema=OFF",
	}
	args = append(args, opts.Args...)
	started := make(chan error, 1)
	go func() {
		// PR_SET_PDEATHSIG fires when the thread that forked the child exits,
		// so the goroutine keeps its OS thread locked for the child's life.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(mariadbd, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("mysqltest: start mariadbd: %w", err)
			close(s.done)
			return
		}
		s.cmd = cmd
		_ = os.WriteFile(filepath.Join(s.Dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
		started <- nil
		s.waitErr = cmd.Wait()
		if stderr.Len() > 0 {
			_ = os.WriteFile(filepath.Join(s.Dir, "mariadbd.stderr"), stderr.Bytes(), 0o644)
		}
		close(s.done)
	}()
	if err := <-started; err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("mysqltest: mariadbd exited during start-up (%v); error log tail:\n%s", s.waitErr, s.ErrorLogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("mysqltest: waiting for mariadbd: %w; error log tail:\n%s", ctx.Err(), s.ErrorLogTail(30))
		case <-time.After(100 * time.Millisecond):
		}
		lastErr = s.ping(ctx)
		if lastErr == nil {
			return nil
		}
	}
	return fmt.Errorf("mysqltest: mariadbd not ready on %s after %s (last error: %v); error log tail:\n%s", s.Addr(), timeout, lastErr, s.ErrorLogTail(30))
}

func (s *Server) ping(ctx context.Context) error {
	pool, err := sql.Open("mysql", s.AdminDSN(""))
	if err != nil {
		return err
	}
	defer pool.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return pool.PingContext(pctx)
}

func (s *Server) setupUsers(ctx context.Context) error {
	pool, err := sql.Open("mysql", s.AdminDSN(""))
	if err != nil {
		return err
	}
	defer pool.Close()
	var version string
	if err := pool.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return fmt.Errorf("mysqltest: version: %w", err)
	}
	s.Version = version
	if strings.Contains(strings.ToLower(version), "mariadb") {
		s.Flavor = "mariadb"
	} else {
		s.Flavor = "mysql"
	}
	if !s.external {
		var id uint32
		if err := pool.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err == nil {
			s.ServerID = id
		}
	}
	// Users are created outside the binlog, so that a private server's binlog
	// holds only what the tests write and a replica starts with none of its own.
	conn, err := pool.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mysqltest: %w", err)
	}
	defer conn.Close()
	stmts := []string{}
	if !s.external {
		stmts = append(stmts, "SET SESSION sql_log_bin = 0")
	}
	// MySQL 8.0.22+ allows the feeds' visibility fence (a shared-lock point
	// read) only with LOCK TABLES besides SELECT, the grant docs/binlog.md
	// recommends there; MariaDB needs none.
	grants := "REPLICATION SLAVE, REPLICATION CLIENT, SELECT"
	if s.Flavor == "mysql" {
		grants += ", LOCK TABLES"
	}
	for _, host := range []string{"127.0.0.1", "localhost", "%"} {
		u := fmt.Sprintf("'%s'@'%s'", s.CDCUser, host)
		stmts = append(stmts,
			"DROP USER IF EXISTS "+u,
			fmt.Sprintf("CREATE USER %s IDENTIFIED BY '%s'", u, s.CDCPassword),
			"GRANT "+grants+" ON *.* TO "+u)
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mysqltest: %s: %w", q, err)
		}
	}
	return nil
}

// External connects to an existing server given by an admin DSN and creates
// the connector user there. Stop leaves the server running.
func External(ctx context.Context, adminDSN string) (*Server, error) {
	cfg, err := mysql.ParseDSN(adminDSN)
	if err != nil {
		return nil, fmt.Errorf("mysqltest: %s is not a valid DSN (want user:pass@tcp(127.0.0.1:3306)/): %w", EnvDSN, err)
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mysqltest: %s: address %q: %w", EnvDSN, cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("mysqltest: %s must point at a loopback address, got %q", EnvDSN, host)
	}
	port, _ := strconv.Atoi(portStr)
	s := &Server{Host: host, Port: port, AdminUser: cfg.User, AdminPassword: cfg.Passwd,
		CDCUser: "feedcdc", CDCPassword: "feedcdc-" + randHex(6), external: true, done: make(chan struct{})}
	close(s.done)
	if err := s.ping(ctx); err != nil {
		return nil, fmt.Errorf("mysqltest: external server %s: %w", s.Addr(), err)
	}
	if err := s.setupUsers(ctx); err != nil {
		return nil, err
	}
	pool, err := sql.Open("mysql", s.AdminDSN(""))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := pool.QueryRowContext(ctx, "SELECT @@server_id").Scan(&s.ServerID); err != nil {
		return nil, fmt.Errorf("mysqltest: server_id: %w", err)
	}
	return s, nil
}

// Stop stops a private server by its PID (SIGTERM, then SIGKILL after 20 s)
// and removes its folder. It is a no-op for an external server.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		if s.external {
			return
		}
		if s.cmd != nil && s.cmd.Process != nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(20 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
		if s.Dir != "" {
			if err := os.RemoveAll(s.Dir); err != nil {
				s.stopErr = fmt.Errorf("mysqltest: remove %s: %w", s.Dir, err)
			}
		}
	})
	return s.stopErr
}

// Kill stops a private server abruptly (SIGKILL) and keeps its datadir, for
// crash tests; Restart brings it back.
func (s *Server) Kill() error {
	if s.external || s.cmd == nil {
		return errors.New("mysqltest: Kill needs a private server")
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return nil
}

// Shutdown stops a private server cleanly (SIGTERM) and keeps its datadir;
// Restart brings it back on the same port.
func (s *Server) Shutdown() error {
	if s.external || s.cmd == nil {
		return errors.New("mysqltest: Shutdown needs a private server")
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	return nil
}

// Restart starts a stopped private server again with the same datadir, port
// and options.
func (s *Server) Restart(ctx context.Context, opts Options) error {
	if s.external {
		return errors.New("mysqltest: Restart needs a private server")
	}
	select {
	case <-s.done:
	default:
		return errors.New("mysqltest: Restart: server is still running")
	}
	mariadbd, err := findBinary("mariadbd", "/usr/sbin/mariadbd")
	if err != nil {
		return err
	}
	s.done = make(chan struct{})
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	opts.ServerID = s.ServerID
	return s.launch(ctx, mariadbd, opts, timeout)
}

// PID is the private server's process id (0 for an external server).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// ErrorLogTail returns the last n lines of the private server's error log.
func (s *Server) ErrorLogTail(n int) string {
	if s.Dir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(s.Dir, "mariadbd.err"))
	if err != nil {
		b2, err2 := os.ReadFile(filepath.Join(s.Dir, "mariadbd.stderr"))
		if err2 != nil {
			return fmt.Sprintf("(no error log: %v)", err)
		}
		b = b2
	}
	return tail(b, n)
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func findBinary(name, fallback string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", fmt.Errorf("mysqltest: %s not found: install Debian's MariaDB server with `apt-get install mariadb-server mariadb-client` (what .ci/run does), or set %s to a MySQL 8 server's admin DSN", name, EnvDSN)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("mysqltest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// uniqueServerID returns an id that differs between concurrently running
// test binaries and between servers of one binary.
func uniqueServerID() uint32 {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return 1000 + uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sweepStale removes datadirs left by test binaries that died without
// cleaning up (their mariadbd died with them through PDEATHSIG).
func sweepStale() {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		rest := strings.TrimPrefix(e.Name(), dirPrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		dir := filepath.Join(os.TempDir(), e.Name())
		// Only remove it if its mariadbd is gone too.
		if b, err := os.ReadFile(filepath.Join(dir, "mariadbd.pid")); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && processAlive(p) {
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Exec runs statements as admin on db and fails the test on error.
func (s *Server) Exec(t testing.TB, db string, stmts ...string) {
	t.Helper()
	pool := s.Admin(t, db)
	for _, q := range stmts {
		if _, err := pool.Exec(q); err != nil {
			t.Fatalf("mysqltest: %s: %v", firstLine(q), err)
		}
	}
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	if sc.Scan() {
		return sc.Text()
	}
	return s
}
