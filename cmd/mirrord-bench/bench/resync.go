package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// resyncs measures (a) mirrord's full load (`sync --once` into an empty
// store), with its default generators and without (`--generators=`), (b)
// the naive Go baseline and (c) the Node.js original on the same
// synthetic logs, each into an empty store, in child processes.
func (b *runner) resyncs(ctx context.Context) error {
	for _, n := range b.cfg.Sizes {
		b.progress("writing a synthetic log of %s events", countLabel(n))
		logPath, err := synthLog(b.cfg.Dir, n)
		if err != nil {
			return err
		}
		size, err := fileSize(logPath)
		if err != nil {
			return err
		}
		row := ResyncRow{Events: n, Bytes: size}
		store := filepath.Join(b.work, "store")
		measure := func(label string, fn func() (procResult, error)) (Measure, error) {
			var walls []time.Duration
			var m Measure
			for i := range b.cfg.Runs {
				if err := os.RemoveAll(store); err != nil {
					return m, err
				}
				b.progress("%s: %s events, run %d of %d", label, countLabel(n), i+1, b.cfg.Runs)
				p, err := fn()
				if err != nil {
					return m, err
				}
				walls = append(walls, p.Wall)
				m.MaxRSS = max(m.MaxRSS, p.MaxRSS)
			}
			m.Took = median(walls)
			return m, nil
		}
		if row.Mirrord, err = measure("mirrord sync --generators=", func() (procResult, error) {
			return b.mirrordSync(ctx, logPath, store, false, false)
		}); err != nil {
			return err
		}
		if row.WithGenerators, err = measure("mirrord sync (default generators)", func() (procResult, error) {
			return b.mirrordSync(ctx, logPath, store, false, true)
		}); err != nil {
			return err
		}
		if row.Naive, err = measure("naive Go", func() (procResult, error) {
			_, p, err := b.childStep(ctx, "naive", logPath, store)
			return p, err
		}); err != nil {
			return err
		}
		if b.rep.Node == "" {
			if row.Node, err = measure("node-origin", func() (procResult, error) {
				return run(ctx, b.cfg.NodeOrigin, nil, "node", "ingest.js", logPath, store)
			}); err != nil {
				return err
			}
		}
		if err := os.RemoveAll(store); err != nil {
			return err
		}
		b.rep.Resync = append(b.rep.Resync, row)
	}
	return nil
}

// nodeStatus finds the Node.js original and installs its dependencies
// once; it returns "" when Node runs, or why it does not.
func (b *runner) nodeStatus(ctx context.Context) string {
	if b.cfg.NoNode || (b.cfg.Quick && b.cfg.NodeOrigin == "") {
		return "skipped: not asked for"
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "skipped: no node"
	}
	if b.cfg.NodeOrigin == "" {
		b.cfg.NodeOrigin = findNodeOrigin()
		if b.cfg.NodeOrigin == "" {
			return "skipped: no shared/bench/node-origin above the working directory (pass --node-origin)"
		}
	}
	if _, err := os.Stat(filepath.Join(b.cfg.NodeOrigin, "ingest.js")); err != nil {
		return fmt.Sprintf("skipped: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.cfg.NodeOrigin, "node_modules", "level")); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			return "skipped: node-origin's dependencies are not installed and there is no npm"
		}
		b.progress("installing node-origin's dependencies (npm install in %s)", b.cfg.NodeOrigin)
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund")
		cmd.Dir = b.cfg.NodeOrigin
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Sprintf("skipped: npm install failed: %v: %s", err, lastLine(out))
		}
	}
	return ""
}

// findNodeOrigin looks for shared/bench/node-origin beside the working
// directory or any of its ancestors.
func findNodeOrigin() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "shared", "bench", "node-origin")
		if _, err := os.Stat(filepath.Join(p, "ingest.js")); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func lastLine(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
