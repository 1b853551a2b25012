package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// ResolveModules returns the host paths of the modules named (module names,
// dashes and underscores alike) and of every module they depend on, each
// after its dependencies, from dir's modules.dep (dir is
// /lib/modules/<release>). Modules the kernel has built in
// (modules.builtin) are left out; a module that is neither is an error.
func ResolveModules(dir string, names []string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	r := resolver{deps: deps, done: map[string]bool{}, visiting: map[string]bool{}}
	for _, name := range names {
		name = normalise(name)
		if _, ok := deps.byName[name]; !ok {
			if builtin[name] {
				continue
			}
			return nil, fmt.Errorf("module %s is neither in %s/modules.dep nor built in: %w", name, dir, errdefs.ErrNotFound)
		}
		if err := r.visit(name); err != nil {
			return nil, err
		}
	}
	paths := make([]string, len(r.order))
	for i, name := range r.order {
		paths[i] = filepath.Join(dir, deps.byName[name])
	}
	return paths, nil
}

type modulesDep struct {
	byName map[string]string   // module name -> path relative to the modules directory
	deps   map[string][]string // module name -> the names it depends on
}

type resolver struct {
	deps           modulesDep
	done, visiting map[string]bool
	order          []string
}

// visit appends name after everything it depends on (a post-order walk).
func (r *resolver) visit(name string) error {
	if r.done[name] {
		return nil
	}
	if r.visiting[name] {
		return fmt.Errorf("modules.dep: %s depends on itself: %w", name, errdefs.ErrInvalid)
	}
	r.visiting[name] = true
	// modules.dep lists the dependency nearest the root last (the order
	// modprobe loads them in reverse): walk it from the end.
	deps := r.deps.deps[name]
	for i := len(deps) - 1; i >= 0; i-- {
		if _, ok := r.deps.byName[deps[i]]; !ok {
			return fmt.Errorf("modules.dep: %s depends on %s, which it does not list: %w", name, deps[i], errdefs.ErrInvalid)
		}
		if err := r.visit(deps[i]); err != nil {
			return err
		}
	}
	delete(r.visiting, name)
	r.done[name] = true
	r.order = append(r.order, name)
	return nil
}

func readModulesDep(path string) (modulesDep, error) {
	md := modulesDep{byName: map[string]string{}, deps: map[string][]string{}}
	f, err := os.Open(path)
	if err != nil {
		return md, fmt.Errorf("reading modules: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return md, fmt.Errorf("%s: malformed line %q: %w", path, line, errdefs.ErrInvalid)
		}
		if filepath.IsAbs(mod) || strings.Contains(mod, "..") {
			return md, fmt.Errorf("%s: module path %q leaves the directory: %w", path, mod, errdefs.ErrInvalid)
		}
		name := nameOf(mod)
		md.byName[name] = mod
		for _, dep := range strings.Fields(rest) {
			md.deps[name] = append(md.deps[name], nameOf(dep))
		}
	}
	if err := sc.Err(); err != nil {
		return md, fmt.Errorf("reading %s: %w", path, err)
	}
	return md, nil
}

func readBuiltin(path string) (map[string]bool, error) {
	builtin := map[string]bool{}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return builtin, nil
	} else if err != nil {
		return nil, fmt.Errorf("reading modules: %w", err)
	}
	for _, line := range strings.Fields(string(data)) {
		builtin[nameOf(line)] = true
	}
	return builtin, nil
}

// nameOf is the module name of a module file: kernel/fs/9p/9p.ko.xz is 9p,
// drivers/char/hw_random/virtio-rng.ko is virtio_rng.
func nameOf(path string) string {
	return normalise(strings.TrimSuffix(ModuleName(path), ".ko"))
}

func normalise(name string) string {
	return strings.ReplaceAll(name, "-", "_")
}
