package main

// An incremental change feed, as vCenter's PropertyCollector has one.
//
// govmomi's simulator answers WaitForUpdatesEx on a 250 ms tick and, for every
// inventory change in the batch, collects each filter of the collector again:
// at 1,000 VMs a wait on their power state costs seconds of the simulator's
// own work per batch, which is the simulator's cost, not vCenter's. labsim
// answers the filters that name their objects directly (no traversal, no
// "all properties", no list-valued property) itself: a listener records each
// change of a followed property as it happens, and a waiting WaitForUpdatesEx
// returns as soon as there is one. Other filters stay with the simulator;
// --govmomi-feed leaves every filter to it, for comparison.

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type moref = types.ManagedObjectReference

type feedFilter struct {
	self    moref
	paths   map[string][]string // object type -> followed paths
	objects []moref
	entered bool // its objects' current values were sent
}

type feedCollector struct {
	filters []*feedFilter
	pending map[moref]map[string]types.AnyType // object -> path -> latest value not yet sent
	left    map[moref]bool                     // followed objects deleted since the last answer
	wake    chan struct{}                      // a change or a cancel arrived (capacity 1)
	cancel  bool
	version int
	used    time.Time // last created on or waited on: a client gone without destroying it is forgotten
}

// abandoned is how long a collector may go unasked before labsim forgets it
// (its client was killed, or logged out without destroying it).
const abandoned = 10 * time.Minute

type feed struct {
	mu         sync.Mutex
	collectors map[moref]*feedCollector
	following  map[moref]map[*feedCollector]struct{} // object -> collectors following it
	filters    int
}

func newFeed() *feed {
	f := &feed{collectors: map[moref]*feedCollector{}, following: map[moref]map[*feedCollector]struct{}{}}
	simulator.Map.AddHandler(f)
	return f
}

func (f *feed) overrides() map[string]override {
	return map[string]override{
		"CreateFilter":             f.createFilter,
		"WaitForUpdatesEx":         f.waitForUpdatesEx,
		"WaitForUpdates":           f.waitForUpdates,
		"CancelWaitForUpdates":     f.cancelWait,
		"DestroyPropertyFilter":    f.destroyFilter,
		"DestroyPropertyCollector": f.destroyCollector,
	}
}

// plainPaths returns the filter spec's paths per object type, or false when
// the simulator must answer it (traversal, "all", or a list-valued property).
func plainPaths(spec types.PropertyFilterSpec) (map[string][]string, bool) {
	paths := map[string][]string{}
	for _, p := range spec.PropSet {
		if p.All != nil && *p.All || len(p.PathSet) == 0 {
			return nil, false
		}
		paths[p.Type] = append(paths[p.Type], p.PathSet...)
	}
	for _, o := range spec.ObjectSet {
		if len(o.SelectSet) != 0 || o.Skip != nil && *o.Skip {
			return nil, false
		}
		obj := simulator.Map.Get(o.Obj)
		if obj == nil || paths[o.Obj.Type] == nil {
			return nil, false
		}
		for _, p := range paths[o.Obj.Type] {
			if t, ok := pathType(reflect.TypeOf(obj), p); !ok || t.Kind() == reflect.Slice {
				return nil, false
			}
		}
	}
	return paths, true
}

func (f *feed) createFilter(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.CreateFilter)
	paths, ok := plainPaths(req.Spec)
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.collectors[m.This]
	if !ok {
		if c != nil { // one collector is answered by one of the two, never both
			return fault(&types.NotSupported{})
		}
		return nil
	}
	if c == nil {
		f.forgetAbandoned()
		c = &feedCollector{pending: map[moref]map[string]types.AnyType{}, left: map[moref]bool{}, wake: make(chan struct{}, 1)}
		f.collectors[m.This] = c
	}
	c.used = time.Now()
	f.filters++
	filter := &feedFilter{self: moref{Type: "PropertyFilter", Value: "labsim-filter-" + strconv.Itoa(f.filters)}, paths: paths}
	for _, o := range req.Spec.ObjectSet {
		filter.objects = append(filter.objects, o.Obj)
		if f.following[o.Obj] == nil {
			f.following[o.Obj] = map[*feedCollector]struct{}{}
		}
		f.following[o.Obj][c] = struct{}{}
	}
	c.filters = append(c.filters, filter)
	c.signal() // a poll already waiting answers with the new filter's current values, as vCenter's does
	return &methods.CreateFilterBody{Res: &types.CreateFilterResponse{Returnval: filter.self}}
}

// waitForUpdates is the deprecated form: no options, the whole set in the answer.
func (f *feed) waitForUpdates(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.WaitForUpdates)
	ex := &simulator.Method{This: m.This, Body: &types.WaitForUpdatesEx{This: req.This, Version: req.Version}}
	res := f.waitForUpdatesEx(ex)
	if body, ok := res.(*methods.WaitForUpdatesExBody); ok {
		return &methods.WaitForUpdatesBody{Res: &types.WaitForUpdatesResponse{Returnval: *body.Res.Returnval}}
	}
	return res
}

func (f *feed) waitForUpdatesEx(m *simulator.Method) soap.HasFault {
	req := m.Body.(*types.WaitForUpdatesEx)
	f.mu.Lock()
	c := f.collectors[m.This]
	f.mu.Unlock()
	if c == nil {
		return nil
	}
	var deadline <-chan time.Time // no MaxWaitSeconds: wait until there is something
	if req.Options != nil && req.Options.MaxWaitSeconds != nil {
		deadline = time.After(time.Duration(*req.Options.MaxWaitSeconds) * time.Second)
	}
	for {
		set, canceled := f.take(c)
		switch {
		case canceled:
			return fault(&types.RequestCanceled{})
		case set != nil:
			return &methods.WaitForUpdatesExBody{Res: &types.WaitForUpdatesExResponse{Returnval: set}}
		}
		select {
		case <-c.wake:
		case <-deadline: // vCenter answers an empty wait with no update set
			return &methods.WaitForUpdatesExBody{Res: &types.WaitForUpdatesExResponse{}}
		}
	}
}

// take returns what the collector has to send (the current values of filters
// not yet entered, then the changes since the last answer), or nil.
func (f *feed) take(c *feedCollector) (*types.UpdateSet, bool) {
	var entering []*feedFilter
	f.mu.Lock()
	c.used = time.Now()
	if c.cancel {
		c.cancel = false
		f.mu.Unlock()
		return nil, true
	}
	for _, filter := range c.filters {
		if !filter.entered {
			filter.entered = true
			entering = append(entering, filter)
		}
	}
	var set []types.PropertyFilterUpdate
	for _, filter := range c.filters {
		if fu := filter.changes(c); len(fu.ObjectSet) != 0 {
			set = append(set, fu)
		}
	}
	c.pending, c.left = map[moref]map[string]types.AnyType{}, map[moref]bool{}
	f.mu.Unlock()
	for _, filter := range entering { // read outside the feed's lock: the objects' own locks are taken
		set = append(set, filter.current())
	}
	if len(set) == 0 {
		return nil, false
	}
	c.version++
	return &types.UpdateSet{Version: strconv.Itoa(c.version), FilterSet: set}, false
}

func (filter *feedFilter) changes(c *feedCollector) types.PropertyFilterUpdate {
	fu := types.PropertyFilterUpdate{Filter: filter.self}
	if !filter.entered {
		return fu
	}
	for _, o := range filter.objects {
		if c.left[o] {
			fu.ObjectSet = append(fu.ObjectSet, types.ObjectUpdate{Obj: o, Kind: types.ObjectUpdateKindLeave})
			continue
		}
		var changes []types.PropertyChange
		for _, p := range filter.paths[o.Type] {
			if v, ok := c.pending[o][p]; ok {
				changes = append(changes, types.PropertyChange{Name: p, Op: types.PropertyChangeOpAssign, Val: v})
			}
		}
		if changes != nil {
			fu.ObjectSet = append(fu.ObjectSet, types.ObjectUpdate{Obj: o, Kind: types.ObjectUpdateKindModify, ChangeSet: changes})
		}
	}
	return fu
}

func (filter *feedFilter) current() types.PropertyFilterUpdate {
	fu := types.PropertyFilterUpdate{Filter: filter.self}
	for _, o := range filter.objects {
		obj := simulator.Map.Get(o)
		if obj == nil {
			continue
		}
		u := types.ObjectUpdate{Obj: o, Kind: types.ObjectUpdateKindEnter}
		simulator.Map.WithLock(obj, func() {
			for _, p := range filter.paths[o.Type] {
				if v, ok := readPath(obj, p); ok {
					u.ChangeSet = append(u.ChangeSet, types.PropertyChange{Name: p, Op: types.PropertyChangeOpAssign, Val: v})
				}
			}
		})
		fu.ObjectSet = append(fu.ObjectSet, u)
	}
	return fu
}

func (f *feed) cancelWait(m *simulator.Method) soap.HasFault {
	f.mu.Lock()
	c := f.collectors[m.This]
	if c != nil {
		c.cancel = true
	}
	f.mu.Unlock()
	if c == nil {
		return nil
	}
	c.signal()
	return &methods.CancelWaitForUpdatesBody{Res: &types.CancelWaitForUpdatesResponse{}}
}

func (f *feed) destroyFilter(m *simulator.Method) soap.HasFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.collectors {
		for i, filter := range c.filters {
			if filter.self == m.This {
				c.filters = append(c.filters[:i], c.filters[i+1:]...)
				f.unfollow(c, filter)
				return &methods.DestroyPropertyFilterBody{Res: &types.DestroyPropertyFilterResponse{}}
			}
		}
	}
	return nil
}

// destroyCollector forgets the collector; the simulator then destroys its own.
func (f *feed) destroyCollector(m *simulator.Method) soap.HasFault {
	f.mu.Lock()
	if c := f.collectors[m.This]; c != nil {
		for _, filter := range c.filters {
			f.unfollow(c, filter)
		}
		delete(f.collectors, m.This)
		c.cancel = true
		c.signal()
	}
	f.mu.Unlock()
	return nil
}

func (f *feed) forgetAbandoned() {
	for self, c := range f.collectors {
		if time.Since(c.used) > abandoned {
			for _, filter := range c.filters {
				f.unfollow(c, filter)
			}
			delete(f.collectors, self)
		}
	}
}

func (f *feed) unfollow(c *feedCollector, filter *feedFilter) {
	for _, o := range filter.objects {
		delete(f.following[o], c)
		if len(f.following[o]) == 0 {
			delete(f.following, o)
		}
	}
}

func (c *feedCollector) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// The simulator's registry calls these for every change of every object.

func (f *feed) Reference() types.ManagedObjectReference {
	return moref{Type: "LabsimFeed", Value: "feed"}
}

func (f *feed) PutObject(mo.Reference) {}

func (f *feed) UpdateObject(obj mo.Reference, changes []types.PropertyChange) {
	o := obj.Reference()
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.following[o] {
		touched := false
		for _, filter := range c.filters {
			for _, p := range filter.paths[o.Type] {
				v, ok := changedValue(obj, p, changes)
				if !ok {
					continue
				}
				if c.pending[o] == nil {
					c.pending[o] = map[string]types.AnyType{}
				}
				c.pending[o][p] = v
				touched = true
			}
		}
		if touched {
			c.signal()
		}
	}
}

func (f *feed) RemoveObject(o moref) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.following[o] {
		c.left[o] = true
		c.signal()
	}
}

// changedValue is the new value of path when one of changes touches it: the
// change's own value when it names the path, else read from the object (the
// change names a parent or a part of it).
func changedValue(obj mo.Reference, path string, changes []types.PropertyChange) (types.AnyType, bool) {
	for _, ch := range changes {
		switch {
		case ch.Name == path:
			return ch.Val, true
		case strings.HasPrefix(path, ch.Name+".") || strings.HasPrefix(ch.Name, path+"."):
			v, _ := readPath(obj, path)
			return v, true
		}
	}
	return nil, false
}

// readPath reads a property path ("runtime.powerState") of a simulator object,
// as the simulator does: fields by their upper-cased names, pointers followed,
// a nil pointer or an empty string unset.
func readPath(obj interface{}, path string) (types.AnyType, bool) {
	v := reflect.ValueOf(obj)
	for _, name := range strings.Split(path, ".") {
		for v.Kind() == reflect.Ptr || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return nil, false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return nil, false
		}
		if v = v.FieldByName(strings.ToUpper(name[:1]) + name[1:]); !v.IsValid() {
			return nil, false
		}
	}
	if v.Kind() == reflect.Ptr && v.IsNil() || v.Kind() == reflect.String && v.Len() == 0 {
		return nil, false
	}
	if v.Kind() == reflect.Ptr {
		v = v.Elem()
	}
	return v.Interface(), true
}

// pathType is the type a property path has on objects of type t.
func pathType(t reflect.Type, path string) (reflect.Type, bool) {
	for _, name := range strings.Split(path, ".") {
		for t.Kind() == reflect.Ptr {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil, false
		}
		field, ok := t.FieldByName(strings.ToUpper(name[:1]) + name[1:])
		if !ok {
			return nil, false
		}
		t = field.Type
	}
	return t, true
}
