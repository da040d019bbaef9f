module github.com/berth/bodyread

go 1.22
