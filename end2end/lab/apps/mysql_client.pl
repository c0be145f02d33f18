#!/usr/bin/perl
# A MariaDB client as applications are: DBD::MariaDB (libmariadb's protocol), two connections
# opened and used before the capture starts (joined mid-stream), then on each a mix: `a` runs
# server-side prepared statements (COM_STMT_PREPARE, EXECUTE, CLOSE) — one prepared before the
# capture, executed again after it — and an error; `b` runs plain queries, a multi-statement
# query and a transaction. Each connection first runs `SELECT 1 AS mark_<name>`: the server's
# general log and the capture both show which connection is which.
#
# usage: mysql_client.pl HOST READY_FILE GO_FILE
use strict;
use warnings;
use DBI;
use Time::HiRes qw(sleep);

my ($host, $ready, $go) = @ARGV;
my %opt = (RaiseError => 1, PrintError => 0, AutoCommit => 1);
my $dsn = "DBI:MariaDB:database=shop;host=$host;port=3306";
my $a = DBI->connect("$dsn;mariadb_server_prepare=1", 'app', '', \%opt) or die;
my $b = DBI->connect("$dsn;mariadb_multi_statements=1", 'app', '', \%opt) or die;
$b->do('CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, name TEXT)');
$b->do('DELETE FROM items');
my $get = $a->prepare('SELECT name FROM items WHERE id = ?');
$get->execute(0);
$get->fetchall_arrayref;
open(my $f, '>', $ready) or die; close $f;
sleep 0.05 until -e $go;

$a->do('SELECT 1 AS mark_a');
$b->do('SELECT 1 AS mark_b');

for my $i (1 .. 10) {
    $b->do('INSERT INTO items (id, name) VALUES (?, ?)', undef, $i, "secret-name-$i");
}
for my $i (1 .. 10) {
    $get->execute($i);
    $get->fetchall_arrayref;
}
my $put = $a->prepare('UPDATE items SET name = ? WHERE id = ?');
$put->execute('secret-renamed', 3);
$put->finish;
undef $put;
eval { $a->do('SELECT * FROM no_such_table'); };
eval { my $bad = $a->prepare('SELEC broken'); $bad->execute; };

my $multi = $b->prepare('SELECT COUNT(*) FROM items; UPDATE items SET name = "x" WHERE id = 1');
$multi->execute;
do { $multi->fetchall_arrayref if $multi->{NUM_OF_FIELDS} } while ($multi->more_results);
$b->begin_work;
$b->do('DELETE FROM items WHERE id = 10');
$b->commit;
$get->finish;
undef $get;
$a->disconnect;
$b->disconnect;
