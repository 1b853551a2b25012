package builtin

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/store"
)

// countingStore counts the images written into a real store.
type countingStore struct {
	*store.Store
	imports atomic.Int32
}

func (c *countingStore) Import(r io.Reader, opts store.ImportOptions) (store.Image, error) {
	c.imports.Add(1)
	return c.Store.Import(r, opts)
}

// The image is written once, whoever asks and however many at once, and
// names the contract's entrypoints.
func TestInstall(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	ids := make([]string, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := Install(context.Background(), cs, Fly, "1.0")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("image IDs %q", ids)
		}
	}
	if n := cs.imports.Load(); n != 1 {
		t.Errorf("the image was imported %d times, want 1", n)
	}
	img, err := st.Get(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if img.Signer != store.SignerBuiltin || img.Name != Fly.ImageName() {
		t.Errorf("image %s signed %q", img.Name, img.Signer)
	}
	for _, e := range contract.Entrypoints() {
		if v, _ := img.Manifest.Annotations.Get(e.Annotation()); v != "/fly/"+string(e) {
			t.Errorf("%s entrypoint %q", e, v)
		}
	}
	if v, _ := img.Manifest.Annotations.Get(contract.AnnotationInterfaceVersion); v != "4" {
		t.Errorf("interface version %q", v)
	}
}
