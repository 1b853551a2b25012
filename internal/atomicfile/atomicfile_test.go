package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two, longer"} {
		if err := Write(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), nil, 0o644); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

func TestCreateStreamsAndRefusesToClobber(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	fill := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := Create(path, 0o600, false, fill("first")); err != nil {
		t.Fatal(err)
	}
	if err := Create(path, 0o600, false, fill("second")); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("clobbered without overwrite: %v", err)
	} else if strings.Contains(err.Error(), "--") {
		t.Fatalf("a library error names a command-line flag: %v", err)
	}
	if err := Create(path, 0o600, true, fill("third")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "third" {
		t.Fatalf("content %q", got)
	}
	boom := errors.New("boom")
	if err := Create(filepath.Join(dir, "failed"), 0o600, false, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fill error lost: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("leftovers: %v", ents)
	}
}

func TestWriteModTimeSetsTheTimeBeforeTheFileAppears(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status")
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := WriteModTime(path, []byte("0"), 0o644, when); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(when) {
		t.Fatalf("mtime %v, want %v", fi.ModTime(), when)
	}
	if err := WriteModTime(path, []byte("1"), 0o644, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.ModTime().Equal(when) {
		t.Fatal("a zero mtime kept the old time instead of the time of writing")
	}
}

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	if err := SyncDir(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("SyncDir of a missing directory: %v", err)
	}
}

func TestReplaceIsAtomicLikeWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, content := range []string{"one", "two, longer", ""} {
		if err := ReplaceModTime(path, []byte(content), 0o604, mtime); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o604 || !fi.ModTime().Equal(mtime) {
		t.Fatalf("mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	if err := Replace(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
	if err := Replace(filepath.Join(dir, "missing", "f"), nil, 0o644); err == nil {
		t.Fatal("replacing into a missing directory succeeded")
	}
}

func TestCreateUnnamed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if err := CreateUnnamed(path, 0o644, false, write("one")); err != nil {
		t.Fatal(err)
	}
	if err := CreateUnnamed(path, 0o644, false, write("two")); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("over an existing file: %v", err)
	}
	if err := CreateUnnamed(path, 0o640, true, write("three")); err != nil {
		t.Fatal(err)
	}
	if err := CreateUnnamed(path, 0o644, true, func(io.Writer) error { return errors.New("cut") }); err == nil {
		t.Error("a failed fill succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "three" {
		t.Errorf("content %q", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left %v", ents)
	}
}
