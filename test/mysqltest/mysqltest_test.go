package mysqltest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var srv *Server

func TestMain(m *testing.M) { os.Exit(Main(m, Options{}, &srv)) }

func TestServerHasBinlogSettings(t *testing.T) {
	db := srv.Admin(t, "")
	var format, image, meta string
	if err := db.QueryRow("SELECT @@binlog_format, @@binlog_row_image, @@log_bin").Scan(&format, &image, &meta); err != nil {
		t.Fatal(err)
	}
	if format != "ROW" || image != "FULL" || meta != "1" {
		t.Fatalf("binlog settings: format=%s image=%s log_bin=%s", format, image, meta)
	}
	if srv.Flavor == "mariadb" {
		var rowMeta string
		var strict int
		if err := db.QueryRow("SELECT @@binlog_row_metadata, @@gtid_strict_mode").Scan(&rowMeta, &strict); err != nil {
			t.Fatal(err)
		}
		if rowMeta != "FULL" || strict != 1 {
			t.Fatalf("row metadata %s, gtid strict %d", rowMeta, strict)
		}
	}
	var id uint32
	if err := db.QueryRow("SELECT @@server_id").Scan(&id); err != nil || id != srv.ServerID {
		t.Fatalf("server_id %d (%v), want %d", id, err, srv.ServerID)
	}
}

func TestConnectorUserIsLeastPrivilege(t *testing.T) {
	name := srv.NewDatabase(t, "priv")
	srv.Exec(t, name, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	cdc, err := sql.Open("mysql", srv.CDCDSN(name))
	if err != nil {
		t.Fatal(err)
	}
	defer cdc.Close()
	var n int
	if err := cdc.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("cdc user cannot read: %v", err)
	}
	if _, err := cdc.Exec("INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("cdc user could write; it must be read-only")
	}
	rows, err := cdc.Query("SHOW GRANTS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var grants []string
	for rows.Next() {
		var g string
		_ = rows.Scan(&g)
		grants = append(grants, g)
	}
	all := strings.Join(grants, "\n")
	for _, want := range []string{"SELECT", "REPLICATION SLAVE"} {
		if !strings.Contains(all, want) {
			t.Errorf("grants lack %s:\n%s", want, all)
		}
	}
	if strings.Contains(all, "ALL PRIVILEGES") || strings.Contains(all, "INSERT") {
		t.Errorf("grants too wide:\n%s", all)
	}
}

func TestNewDatabaseIsDroppedAtCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		name = srv.NewDatabase(t, "drop me")
		srv.Exec(t, name, "CREATE TABLE x (id INT PRIMARY KEY)")
	})
	var n int
	if err := srv.Admin(t, "").QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

// TestPrivateServerLifecycle starts a second server, stops it and checks
// that its process is gone and its datadir removed.
func TestPrivateServerLifecycle(t *testing.T) {
	if srv.External() {
		t.Log("external server: lifecycle of private servers still tested below")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid, dir := s.PID(), s.Dir
	if pid == 0 || dir == "" {
		t.Fatalf("pid %d dir %q", pid, dir)
	}
	if s.ServerID == srv.ServerID && !srv.External() {
		t.Fatalf("two servers share server_id %d", s.ServerID)
	}
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx, Options{}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := s.ping(ctx); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	pid = s.PID()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("mariadbd pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("datadir %s not removed: %v", dir, err)
	}
}

// TestStartFailureShowsErrorLog starts mariadbd with a flag it rejects and
// expects the error to carry the server's own message.
func TestStartFailureShowsErrorLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Args: []string{"--binlog-format=NOPE"}})
	if err == nil {
		s.Stop()
		t.Fatal("mariadbd started with an invalid flag")
	}
	if !strings.Contains(err.Error(), "binlog") || !strings.Contains(err.Error(), "error log") {
		t.Fatalf("error does not show the server's log: %v", err)
	}
	if n := len(ownDirs()); n != 1 {
		t.Fatalf("a failed start left its folder behind: %d folders of this process, want 1 (the shared server's)", n)
	}
}

func ownDirs() []string {
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-*", dirPrefix, os.Getpid())))
	return m
}

// TestCrashedTestBinaryLeavesNoServer runs a child test binary that starts a
// server and then panics: its mariadbd must die with it, and the next Start
// must remove its folder.
func TestCrashedTestBinaryLeavesNoServer(t *testing.T) {
	if os.Getenv("MYSQLTEST_CRASH_CHILD") == "1" {
		ctx := context.Background()
		s, err := Start(ctx, Options{})
		if err != nil {
			fmt.Println("START-ERROR", err)
			os.Exit(3)
		}
		fmt.Printf("CHILD pid=%d dir=%s\n", s.PID(), s.Dir)
		panic("simulated failing test")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashedTestBinaryLeavesNoServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MYSQLTEST_CRASH_CHILD=1", EnvDSN+"=")
	out, _ := cmd.CombinedOutput()
	var pid int
	var dir string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "CHILD ") {
			fmt.Sscanf(line, "CHILD pid=%d dir=%s", &pid, &dir)
		}
	}
	if pid == 0 {
		t.Fatalf("child did not start a server:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("mariadbd %d outlived its crashed test binary", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sweepStale()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("folder %s of the crashed child was not swept: %v", dir, err)
	}
}

// TestReplicaFollowsPrimaryAndLogsWhatItApplies proves the primary/replica
// topology: a write on the primary reaches the replica and appears in the
// replica's own binlog.
func TestReplicaFollowsPrimaryAndLogsWhatItApplies(t *testing.T) {
	if srv.External() {
		t.Log("external server: the replica topology uses private servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Stop()
	replica, err := StartReplica(ctx, primary, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Stop()
	p, _ := sql.Open("mysql", primary.AdminDSN(""))
	defer p.Close()
	if _, err := p.Exec("CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO shop.t VALUES (1,'a'),(2,'b')"); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitReplicated(ctx, primary); err != nil {
		t.Fatal(err)
	}
	r, _ := sql.Open("mysql", replica.CDCDSN("shop"))
	defer r.Close()
	var n int
	if err := r.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("replica has %d rows (%v)", n, err)
	}
	var pos string
	if err := r.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil || !strings.Contains(pos, fmt.Sprintf("-%d-", primary.ServerID)) {
		t.Fatalf("replica binlog position %q (%v) does not hold the primary's GTIDs (server %d)", pos, err, primary.ServerID)
	}
	if lag, err := replica.ReplicaLagSeconds(ctx); err != nil || lag > 60 {
		t.Fatalf("lag %d %v", lag, err)
	}
}
