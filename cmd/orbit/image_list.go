package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/store"
)

// imageField is one column of `orbit image list`.
type imageField string

const (
	fieldID         imageField = "id"
	fieldName       imageField = "name"
	fieldSize       imageField = "size"
	fieldImportTime imageField = "importtime"
	fieldLastUsed   imageField = "lastused"
	fieldLatest     imageField = "latest"
)

var imageFieldHeaders = map[imageField]string{
	fieldID:         "ID",
	fieldName:       "NAME",
	fieldSize:       "SIZE",
	fieldImportTime: "IMPORT TIME",
	fieldLastUsed:   "LAST USED",
	fieldLatest:     "LATEST",
}

// imageFields is a comma-separated --fields or --sort value.
type imageFields []imageField

func (f *imageFields) Set(s string) error {
	var out imageFields
	for _, w := range strings.Split(s, ",") {
		field := imageField(strings.ToLower(strings.TrimSpace(w)))
		if _, ok := imageFieldHeaders[field]; !ok {
			return fmt.Errorf("unknown field %q: %w", w, errdefs.ErrInvalid)
		}
		if slices.Contains(out, field) {
			return fmt.Errorf("field %q given twice: %w", w, errdefs.ErrInvalid)
		}
		out = append(out, field)
	}
	*f = out
	return nil
}

func (f *imageFields) String() string {
	w := make([]string, len(*f))
	for i, x := range *f {
		w[i] = string(x)
	}
	return strings.Join(w, ",")
}

func (f *imageFields) Type() string { return "fields" }

// sortOrder is --order: asc or desc.
type sortOrder bool

func (o *sortOrder) Set(s string) error {
	switch s {
	case "asc":
		*o = false
	case "desc":
		*o = true
	default:
		return fmt.Errorf("want asc or desc: %w", errdefs.ErrInvalid)
	}
	return nil
}

func (o *sortOrder) String() string {
	if *o {
		return "desc"
	}
	return "asc"
}

func (o *sortOrder) Type() string { return "order" }

type imageListOptions struct {
	Fields   imageFields
	Sort     imageFields
	Desc     sortOrder
	Full     bool
	NoLegend bool
	Quiet    bool
	Format   string
}

func (o *imageListOptions) AddFlags(f *pflag.FlagSet) {
	o.Fields = imageFields{fieldID, fieldName, fieldSize, fieldImportTime, fieldLastUsed}
	o.Sort = imageFields{fieldImportTime}
	f.Var(&o.Fields, "fields", `comma-separated list of fields to display: "id", "name", "size", "importtime", "lastused", "latest"`)
	f.Var(&o.Sort, "sort", `sort the output by this comma-separated list of fields: "id", "name", "size", "importtime", "lastused", "latest"`)
	f.Var(&o.Desc, "order", `sorting order: "asc" or "desc"`)
	f.BoolVar(&o.Full, "full", false, "show full image IDs, exact sizes and times")
	f.BoolVar(&o.NoLegend, "no-legend", false, "for scripts: no header line, fields separated by one tab")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only the image IDs, one a line (full with --full)")
	f.StringVar(&o.Format, "format", "", `output format: "json" or "json-pretty"; a table if empty`)
}

func newImageListCommand(g *globalOptions) *cobra.Command {
	o := &imageListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List images in the local store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageList(g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// imageJSON is an image as --format=json shows it; times are Unix
// nanoseconds, as in `orbit list`.
type imageJSON struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ImportTime   int64  `json:"import_time"`
	LastUsedTime int64  `json:"last_used_time"`
	Size         int64  `json:"size"`
}

func runImageList(g *globalOptions, o *imageListOptions) error {
	format, err := parseFormat(o.Format)
	if err != nil {
		return err
	}
	s, err := g.openStore()
	if err != nil {
		return err
	}
	images, err := s.ListBrief()
	if err != nil {
		return err
	}
	sortImages(images, o.Sort, bool(o.Desc))
	if format != formatTabbed {
		out := []imageJSON{}
		for _, img := range images {
			out = append(out, imageJSON{
				ID: img.ID, Name: imageName(img), Size: img.Size,
				ImportTime: nanos(img.ImportedAt), LastUsedTime: nanos(img.LastUsed),
			})
		}
		return writeJSONOut(g.Stdout, format, out)
	}
	if o.Quiet {
		for _, img := range images {
			g.printf("%s\n", imageCell(img, fieldID, o.Full))
		}
		return nil
	}
	var header []string
	for _, f := range o.Fields {
		header = append(header, imageFieldHeaders[f])
	}
	t := newTable(g.Stdout, header, o.NoLegend)
	for _, img := range images {
		var row []string
		for _, f := range o.Fields {
			row = append(row, imageCell(img, f, o.Full))
		}
		t.row(row...)
	}
	return t.flush()
}

func imageCell(img store.Image, f imageField, full bool) string {
	switch f {
	case fieldID:
		if full {
			return img.ID
		}
		return store.ShortID(img.ID)
	case fieldName:
		return printable(imageName(img))
	case fieldSize:
		if full {
			return fmt.Sprint(img.Size)
		}
		return humanSize(img.Size)
	case fieldImportTime:
		return ago(img.ImportedAt, full)
	case fieldLastUsed:
		return ago(img.LastUsed, full)
	case fieldLatest:
		return fmt.Sprint(img.Latest)
	}
	return ""
}

func sortImages(images []store.Image, by imageFields, desc bool) {
	// Pointers are sorted, not the images: an Image is a large struct.
	ptrs := make([]*store.Image, len(images))
	for i := range images {
		ptrs[i] = &images[i]
	}
	slices.SortStableFunc(ptrs, func(a, b *store.Image) int {
		for _, f := range by {
			var c int
			switch f {
			case fieldID:
				c = strings.Compare(a.ID, b.ID)
			case fieldName:
				c = strings.Compare(imageName(*a), imageName(*b))
			case fieldSize:
				c = cmp.Compare(a.Size, b.Size)
			case fieldImportTime:
				c = a.ImportedAt.Compare(b.ImportedAt)
			case fieldLastUsed:
				c = a.LastUsed.Compare(b.LastUsed)
			case fieldLatest:
				c = cmp.Compare(fmt.Sprint(a.Latest), fmt.Sprint(b.Latest))
			}
			if desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	sorted := make([]store.Image, len(images))
	for i, p := range ptrs {
		sorted[i] = *p
	}
	copy(images, sorted)
}

// imageName is name:version, as images are named on the command line.
func imageName(img store.Image) string {
	if n := img.OCIName; n != "" {
		return n
	}
	if v, ok := img.Labels.Get("version"); ok {
		return img.Name.String() + ":" + v
	}
	return img.Name.String()
}

// printable escapes what a terminal or a table would act on: control
// characters (newlines, tabs, escape sequences) and invisible format
// characters, written as Go escapes (\n, \x1b, \u202e). Images admitted
// today cannot carry them in names, labels or annotations, but images
// stored before that check may, and a table row must stay one row.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || r == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	q = q[1 : len(q)-1]
	// Format characters are not graphic, so they are escaped too; the
	// double quote needs no escaping here.
	return strings.ReplaceAll(q, `\"`, `"`)
}

// humanSize renders a byte count in binary units: 512B, 3.5KiB, 143MiB.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= 1024
		if v < 1024 || unit == "TiB" {
			if v < 10 {
				return fmt.Sprintf("%.1f%s", v, unit)
			}
			return fmt.Sprintf("%.0f%s", v, unit)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// treeInUse tells the store which rendered trees pods still use, for the
// `orbit image` subcommands that remove images or trees.
func treeInUse(g *globalOptions) store.InUseFunc {
	return stage0.TreeInUse(g.podsDir())
}
