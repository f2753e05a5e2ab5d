package mysqltest

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// StartReplica starts a private mariadbd that replicates from primary with
// GTID (MASTER_USE_GTID=slave_pos) and writes what it applies to its own
// binlog (log_slave_updates), which is the topology a connector attached to
// a replica sees. The replica is read-only for ordinary users. The caller
// must Stop it.
func StartReplica(ctx context.Context, primary *Server, opts Options) (*Server, error) {
	if primary.Flavor != "mariadb" {
		return nil, fmt.Errorf("mysqltest: StartReplica supports MariaDB primaries, got %s", primary.Flavor)
	}
	replUser, replPass := "repl", "repl-"+randHex(6)
	padmin, err := sql.Open("mysql", primary.AdminDSN(""))
	if err != nil {
		return nil, err
	}
	defer padmin.Close()
	for _, q := range []string{
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", replUser, replPass),
		fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s'", replUser, replPass),
		fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO '%s'@'%%'", replUser),
	} {
		if _, err := padmin.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("mysqltest: primary: %s: %w", q, err)
		}
	}
	opts.Args = append([]string{"--log-slave-updates=ON", "--read-only=ON", "--slave-parallel-threads=0"}, opts.Args...)
	r, err := Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	radmin, err := sql.Open("mysql", r.AdminDSN(""))
	if err != nil {
		r.Stop()
		return nil, err
	}
	defer radmin.Close()
	// The replica was initialised on its own; its own GTIDs (from creating
	// users) are in another domain-server pair, so start from the primary's
	// beginning and reset what the replica logged itself.
	for _, q := range []string{
		"RESET MASTER",
		"SET GLOBAL gtid_slave_pos = ''",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			primary.Host, primary.Port, replUser, replPass),
		"START SLAVE",
	} {
		if _, err := radmin.ExecContext(ctx, q); err != nil {
			r.Stop()
			return nil, fmt.Errorf("mysqltest: replica: %s: %w\n%s", q, err, r.ErrorLogTail(20))
		}
	}
	if err := r.WaitReplicated(ctx, primary); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// WaitReplicated waits until this replica has applied everything the primary
// has written to its binlog so far.
func (s *Server) WaitReplicated(ctx context.Context, primary *Server) error {
	padmin, err := sql.Open("mysql", primary.AdminDSN(""))
	if err != nil {
		return err
	}
	defer padmin.Close()
	var target string
	if err := padmin.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&target); err != nil {
		return fmt.Errorf("mysqltest: primary gtid_binlog_pos: %w", err)
	}
	radmin, err := sql.Open("mysql", s.AdminDSN(""))
	if err != nil {
		return err
	}
	defer radmin.Close()
	var res sql.NullInt64
	// MASTER_GTID_WAIT returns 0 when reached, -1 on timeout.
	if err := radmin.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 120)", target).Scan(&res); err != nil {
		return fmt.Errorf("mysqltest: wait for replica to reach %s: %w\n%s", target, err, s.ErrorLogTail(20))
	}
	if !res.Valid || res.Int64 != 0 {
		return fmt.Errorf("mysqltest: replica did not reach primary position %s within 120 s\n%s", target, s.ErrorLogTail(20))
	}
	return nil
}

// ReplicaLagSeconds reads Seconds_Behind_Master on a replica.
func (s *Server) ReplicaLagSeconds(ctx context.Context) (int64, error) {
	db, err := sql.Open("mysql", s.AdminDSN(""))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return 0, fmt.Errorf("mysqltest: not a replica")
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return 0, err
	}
	for i, c := range cols {
		if c == "Seconds_Behind_Master" {
			if !vals[i].Valid {
				return 0, fmt.Errorf("mysqltest: replication not running")
			}
			var n int64
			fmt.Sscan(vals[i].String, &n)
			return n, nil
		}
	}
	return 0, fmt.Errorf("mysqltest: no Seconds_Behind_Master column")
}
