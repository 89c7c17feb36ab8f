// Prisma's own schema engine (the wasm build, driven through @prisma/adapter-pg: no engine
// binary to download) against a PostgreSQL database, for `tests/integration/prisma.rs`.
//
//   DATABASE_URL=... node prisma/check.mjs diff     what Prisma would change to make the
//                                                   database match schema.prisma; exit 2
//                                                   when that is anything at all
//   DATABASE_URL=... node prisma/check.mjs create   create the models' tables as Prisma's
//                                                   first migration would
//   DATABASE_URL=... node prisma/check.mjs pull     the models `prisma db pull` would write
//
// The diff is printed both as Prisma's summary and as the SQL it would run.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import pg from 'pg'
import { PrismaPg } from '@prisma/adapter-pg'
import { bindMigrationAwareSqlAdapterFactory, ColumnTypeEnum } from '@prisma/driver-adapter-utils'
import * as bindings from '@prisma/schema-engine-wasm/schema_engine_bg'

const here = dirname(fileURLToPath(import.meta.url))
// PRISMA_SCHEMA: another schema file (tests/integration/prisma.rs tries the enum variant teams write).
const schemaPath = process.env.PRISMA_SCHEMA ?? join(here, 'schema.prisma')
const files = [{ path: schemaPath, content: readFileSync(schemaPath, 'utf8') }]
const filters = { externalTables: [], externalEnums: [] }

// adapter-pg 6.19 maps neither `"char"` (OID 18) nor `name` (OID 19) to a column type and
// throws on both, yet the engine's introspection reads them (pg_constraint.contype as a
// character, catalog names as text). pg hands both values over as strings already; this
// gives the adapter `text` fields to map, then tells the engine which columns were `"char"`.
// Patched on the class every connection and transaction of the adapter shares.
async function teachCharAndName(factory) {
  const probe = await factory.connect()
  const queryable = Object.getPrototypeOf(Object.getPrototypeOf(probe))
  await probe.dispose()
  if (queryable.queryRaw.taught) return
  const queryRaw = queryable.queryRaw
  queryable.queryRaw = async function (query) {
    const result = await this.performIO(query)
    const chars = result.fields.map((f) => f.dataTypeID === 18)
    const fields = result.fields.map((f) =>
      f.dataTypeID === 18 || f.dataTypeID === 19 ? { ...f, dataTypeID: 25 } : f,
    )
    const view = Object.create(this, { performIO: { value: async () => ({ ...result, fields }) } })
    const out = await queryRaw.call(view, query)
    out.columnTypes = out.columnTypes.map((t, i) => (chars[i] ? ColumnTypeEnum.Character : t))
    return out
  }
  queryable.queryRaw.taught = true
}

// The package is built for bundlers (it imports its .wasm as a module); Node instantiates it
// by hand, as the package's own entry point would.
const wasmPath = fileURLToPath(
  import.meta.resolve('@prisma/schema-engine-wasm/schema_engine_bg').replace(/\.js$/, '.wasm'),
)
// Where the engine leaves a Rust panic's message before it throws (as Prisma's CLI sets it).
globalThis.PRISMA_WASM_PANIC_REGISTRY = {
  set_message(message) {
    console.error(`schema engine panic: ${message}`)
  },
}
const { instance } = await WebAssembly.instantiate(readFileSync(wasmPath), {
  './schema_engine_bg.js': bindings,
})
bindings.__wbg_set_wasm(instance.exports)
instance.exports.__wbindgen_start()
const { SchemaEngine } = bindings

async function engine(url) {
  const factory = new PrismaPg({ connectionString: url })
  await teachCharAndName(factory)
  const log = () => {}
  return SchemaEngine.new(
    { datamodels: [[schemaPath, files[0].content]] },
    log,
    bindMigrationAwareSqlAdapterFactory(factory),
  )
}

async function diff(url, script) {
  const e = await engine(url)
  return e.diff({
    from: { tag: 'schemaDatasource', files, configDir: here },
    to: { tag: 'schemaDatamodel', files },
    shadowDatabaseUrl: null,
    script,
    exitCode: true,
    filters,
  })
}

async function main() {
  const [command] = process.argv.slice(2)
  const url = process.env.DATABASE_URL
  if (!url) throw new Error('DATABASE_URL is not set')
  if (command === 'diff') {
    const summary = await diff(url, false)
    const sql = await diff(url, true)
    console.log(summary.stdout?.trim() ?? '')
    if (summary.exitCode !== 0) console.log(sql.stdout?.trim() ?? '')
    return summary.exitCode
  }
  if (command === 'create') {
    const e = await engine(url)
    const out = await e.diff({
      from: { tag: 'empty' },
      to: { tag: 'schemaDatamodel', files },
      shadowDatabaseUrl: null,
      script: true,
      exitCode: null,
      filters,
    })
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query(out.stdout)
    await client.end()
    console.log(out.stdout.trim())
    return 0
  }
  if (command === 'pull') {
    // A datasource-only schema, as `db pull` starts from on an empty schema.prisma.
    const datasource = files[0].content.match(/datasource db \{[^}]*\}/)[0]
    const e = await engine(url)
    const out = await e.introspect({
      schema: { files: [{ path: schemaPath, content: datasource }] },
      baseDirectoryPath: here,
      force: true,
      compositeTypeDepth: -1,
      namespaces: null,
    })
    console.log(out.schema.files.map((f) => f.content).join('\n'))
    return 0
  }
  throw new Error(`unknown command ${command ?? '(none)'}: diff | create | pull`)
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e?.stack ?? e)
    process.exit(1)
  },
)
