import Koa from 'koa';

// The ceiling: a bare Koa JSON endpoint, started as its own process like the gateway.
const app = new Koa();
app.use((ctx) => {
  ctx.body = { status: 'ok' };
});
const port = Number(process.env.PORT ?? 3999);
app.listen(port, '127.0.0.1', () => console.log(`ceiling listening ${port}`));
