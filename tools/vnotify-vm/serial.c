/* SPDX-License-Identifier: MIT */
/*
 * A 16550A UART on 0x3f8, IRQ 4, output only: enough for Linux's 8250
 * driver to detect it (scratch, IER and loopback tests, FIFO in IIR) and to
 * drive its transmitter by THR-empty interrupts. Input reads as nothing.
 */
#include "vm.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#define UART_IRQ 4
#define IER_RDI 0x01
#define IER_THRI 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

void serial_init(struct serial *s, struct vm *vm, int out_fd)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->vm = vm;
	s->out_fd = out_fd;
}

/*
 * System reset: the registers at power-on, and IRQ 4 lowered, or KVM would
 * keep our source's line high and the next boot's first raise would be no
 * edge (no THR-empty interrupt: a console that never moves).
 */
void serial_reset(struct serial *s)
{
	struct kvm_irq_level l = { .irq = UART_IRQ, .level = 0 };

	pthread_mutex_lock(&s->lock);
	s->ier = s->lcr = s->mcr = s->scr = s->dll = s->dlm = s->fcr = 0;
	s->thr_pending = false;
	s->irq_level = false;
	(void)ioctl(s->vm->vm_fd, KVM_IRQ_LINE, &l);
	pthread_mutex_unlock(&s->lock);
}

/* with s->lock held: drive IRQ 4 to its level (the IO-APIC sees the edges) */
static void update_irq(struct serial *s)
{
	bool level = (s->ier & IER_THRI) && s->thr_pending;
	struct kvm_irq_level l = { .irq = UART_IRQ, .level = level };

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	if (ioctl(s->vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return;
}

static void put_char(struct serial *s, uint8_t c)
{
	if (s->out_fd < 0)
		return;
	while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static void reg_write(struct serial *s, unsigned int reg, uint8_t v)
{
	switch (reg) {
	case 0:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
		} else {
			if (!(s->mcr & MCR_LOOP))
				put_char(s, v);
			/* sent at once: the transmitter is empty again */
			s->thr_pending = true;
		}
		break;
	case 1:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			/* enabling THRI with the THR empty raises it (as a 16550 does) */
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->thr_pending = true;
			s->ier = v & 0x0f;
		}
		break;
	case 2:
		s->fcr = v;
		break;
	case 3:
		s->lcr = v;
		break;
	case 4:
		s->mcr = v & 0x1f;
		break;
	case 7:
		s->scr = v;
		break;
	default:
		break;
	}
}

static uint8_t reg_read(struct serial *s, unsigned int reg)
{
	uint8_t fifo = (s->fcr & 1) ? 0xc0 : 0;

	switch (reg) {
	case 0:
		return (s->lcr & LCR_DLAB) ? s->dll : 0;
	case 1:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case 2:
		if ((s->ier & IER_THRI) && s->thr_pending) {
			s->thr_pending = false; /* reading IIR acknowledges it */
			return fifo | 0x02;
		}
		return fifo | 0x01;
	case 3:
		return s->lcr;
	case 4:
		return s->mcr;
	case 5:
		return LSR_THRE | LSR_TEMT;
	case 6:
		if (s->mcr & MCR_LOOP)
			/* loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
			return (uint8_t)(((s->mcr & 0x01) << 5) | ((s->mcr & 0x02) << 3) |
					 ((s->mcr & 0x04) << 4) | ((s->mcr & 0x08) << 4));
		return 0xb0; /* DCD, DSR, CTS */
	case 7:
		return s->scr;
	default:
		return 0xff;
	}
}

void serial_io(struct serial *s, uint16_t port, bool write, uint8_t *data, unsigned int size)
{
	pthread_mutex_lock(&s->lock);
	for (unsigned int i = 0; i < size; i++) {
		unsigned int reg = (port + i - 0x3f8) & 7;

		if (write)
			reg_write(s, reg, data[i]);
		else
			data[i] = reg_read(s, reg);
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}
