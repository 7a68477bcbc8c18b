package main

// UPID tasks: every guest start, shutdown and stop, startall/stopall and the Ceph
// flags are a worker task whose id (a UPID) the call returns at once;
// GET /nodes/{node}/tasks/{upid}/status says "running", then "stopped" with an
// exitstatus ("OK", or the error). A task is the node's: while that node is off
// its status cannot be read (595, as PVE's proxy answers).

import (
	"fmt"
	"sync"
	"time"
)

type pveTask struct {
	upid, node, kind, id string
	started              time.Time
	mu                   sync.Mutex
	done                 bool
	exit                 string
}

type pveTasks struct {
	lab  *pveLab
	mu   sync.Mutex
	byID map[string]*pveTask
	pid  int
}

func newPVETasks(l *pveLab) *pveTasks {
	return &pveTasks{lab: l, byID: map[string]*pveTask{}, pid: 0x1000}
}

// start registers a task and runs work in the background; work calls finish(err) once, when it is done.
func (t *pveTasks) start(node, kind, id string, work func(finish func(error))) string {
	t.mu.Lock()
	t.pid++
	now := time.Now()
	task := &pveTask{node: node, kind: kind, id: id, started: now}
	task.upid = fmt.Sprintf("UPID:%s:%08X:%08X:%08X:%s:%s:%s:", node, t.pid, t.pid*7, now.Unix(), kind, id, pveUser)
	t.byID[task.upid] = task
	t.mu.Unlock()
	go work(func(err error) {
		task.mu.Lock()
		defer task.mu.Unlock()
		if task.done {
			return
		}
		task.done, task.exit = true, "OK"
		if err != nil {
			task.exit = err.Error()
		}
	})
	return task.upid
}

func (t *pveTasks) status(upid string) (map[string]interface{}, bool) {
	t.mu.Lock()
	task, ok := t.byID[upid]
	t.mu.Unlock()
	if !ok {
		return nil, false
	}
	task.mu.Lock()
	defer task.mu.Unlock()
	out := map[string]interface{}{"upid": task.upid, "node": task.node, "type": task.kind, "id": task.id, "user": pveUser,
		"starttime": task.started.Unix(), "status": "running"}
	if task.done {
		out["status"], out["exitstatus"] = "stopped", task.exit
	}
	return out, true
}
